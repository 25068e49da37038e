"""The office's and venue managers' reports: the projection of the registry they sum over
(`projection`) and their SQL (`store`)."""
