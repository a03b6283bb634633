"""SOAP front end (spyne): translates messages to and from the RA."""
