"""Lecturers: the corps, schools' requests, monthly matching, offers and lecturer feeds."""
