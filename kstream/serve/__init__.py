"""`kstream serve`: the catalog, the API, its tables, the HTTPS server."""
