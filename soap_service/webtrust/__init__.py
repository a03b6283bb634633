"""The drop-in endpoints for partners of the earlier GeoTrust/Symantec "webtrust" SOAP API
(tracker issue 12, docs/migration.md): an order service at ``/webtrust/order`` and a query
service at ``/webtrust/query``, each with its own WSDL (``/webtrust/order.jws?WSDL``,
``/webtrust/query.jws?WSDL``), in the message shapes that API's client libraries build
(``ReissueInput``, ``orderRequestHeader``, ``authToken``...), served by the same RA as
``/api/order`` and behind the same guard (``api.guard.SOAPGuard``, one per service).
"""
