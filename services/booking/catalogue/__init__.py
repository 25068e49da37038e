"""Booking's replica of the registry's catalogue: what it keeps (`store`), what the booking path
asks of it (`reader`), and how registry events keep it current (`sync`)."""
