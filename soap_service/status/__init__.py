"""The status front end: what relying parties fetch over plain HTTP, at the URLs the
certificates carry (docs/design.md, "Status publication"): the CA certificates and CRLs
(``application``), and the OCSP responder."""
