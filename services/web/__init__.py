"""The web service: the pages people use, rendered from the other services' APIs."""
