"""End User Portal front end."""
