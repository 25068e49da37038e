"""The office's and venue managers' reports: how they keep booking's replica of the catalogue
whole for what they sum (`projection`), and their SQL (`store`)."""
