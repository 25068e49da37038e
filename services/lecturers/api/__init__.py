"""The lecturer service's routes."""

from services.lecturers.api.corps import LecturerController, RequestController
from services.lecturers.api.offers import FeedController, OfferController, OfferLinkController
from services.lecturers.api.runs import RunController

ROUTES = [
    LecturerController,
    FeedController,
    RequestController,
    RunController,
    OfferController,
    OfferLinkController,
]
