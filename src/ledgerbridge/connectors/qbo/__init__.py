"""QuickBooks Online Accounting API v3 connector: client, OAuth, rate budget."""
