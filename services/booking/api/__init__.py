"""The booking service's HTTP routes: parse, authorise, call the domain or the store, map."""

from services.booking.api.availability import AvailabilityController
from services.booking.api.bookings import BookingController, SeriesController
from services.booking.api.reports import ReportController

ROUTES = [BookingController, SeriesController, AvailabilityController, ReportController]
