"""Booking's one replica of the registry's catalogue, read by the booking path and the reports:
what it keeps (`store`), what the booking path asks of it and fills on a miss (`reader`), and how
registry events keep it current (`sync`)."""
