"""Registration authority: every policy decision of the service lives here."""
