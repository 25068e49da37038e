"""The office's pages as pure rules: who may open which, the report form, what the heatmap
shows in words, the matching's reasons in words, and who may invite or remove whom.

Dates of the report form are read in the city's zone (as the room search's are): a report
spans many venues, and the booking service clips each venue's hours on its own clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Final

import msgspec

from services.web.domain.rooms import CITY_ZONE
from services.web.domain.text import N_

OFFICE: Final = "office"
VENUE_MANAGER: Final = "venue_manager"
COMMUNITY_MANAGER: Final = "community_manager"
LECTURER: Final = "lecturer"
PERSON_ROLES: Final = (OFFICE, VENUE_MANAGER, COMMUNITY_MANAGER, LECTURER)
MANAGERS: Final = (VENUE_MANAGER, COMMUNITY_MANAGER)

# Who may open each of these pages. The APIs check every right again; this refuses a page
# whose API would answer another role anyway (any token reads the corps, for instance).
PAGE_ROLES: Final[dict[str, frozenset[str]]] = {
    "/reports": frozenset({OFFICE, VENUE_MANAGER}),
    "/lecturers": frozenset({OFFICE}),
    "/runs": frozenset({OFFICE}),
    "/users": frozenset({OFFICE, *MANAGERS}),
}


def may_open(page: str, role: str) -> bool:
    return role in PAGE_ROLES.get(page, frozenset())


def in_city(moment: datetime) -> datetime:
    """An instant an API gave in UTC (a run's, an invitation's), on the city's clock to show."""
    return moment.astimezone(CITY_ZONE)


# ---------------------------------------------------------------------------------------------
# Utilisation reports

GROUPS: Final = ("area", "venue", "kind", "programme")
GROUP_NAMES: Final = {
    "area": N_("Area"),
    "venue": N_("Venue"),
    "kind": N_("Kind of venue"),
    "programme": N_("Programme"),
}
KIND_NAMES: Final = {
    "school": N_("School"),
    "citizen_school": N_("Citizen school"),
    "community_education_centre": N_("Community education centre"),
    "service_centre": N_("Community service centre"),
    "cultural_centre": N_("Cultural centre"),
    "elderly_university": N_("University for the elderly"),
    "training_college": N_("Training college"),
    "enterprise_training": N_("Enterprise training centre"),
}
PROGRAMME_NAMES: Final = {
    "degree": N_("Continuing degree education"),
    "workforce": N_("Workforce training"),
    "assistance": N_("Learning support for families in need and disabled people"),
    "youth": N_("Youth programme"),
    "elderly": N_("Education for the elderly"),
    "citizen": N_("Citizen education"),
}
DEFAULT_REPORT_DAYS: Final = 28
LONGEST_REPORT_DAYS: Final = 366


class ReportQuery(msgspec.Struct, frozen=True):
    """A report over the whole days `first` to `last` (both included), grouped by `group_by`."""

    first: date
    last: date
    group_by: str = "venue"

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), CITY_ZONE)

    @property
    def end(self) -> datetime:
        """The instant after the last day: the API's ranges are half-open."""
        return datetime.combine(self.last + timedelta(days=1), time(0), CITY_ZONE)

    def heatmap_params(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}

    def api_params(self) -> dict[str, str]:
        return {**self.heatmap_params(), "group_by": self.group_by}

    def filename(self) -> str:
        """utilisation-by-venue-2026-12-01-to-2026-12-28.csv: the days it covers, both ends."""
        return f"utilisation-by-{self.group_by}-{self.first}-to-{self.last}.csv"

    def form(self) -> dict[str, str]:
        """The query as the page's own links and fields carry it."""
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "group_by": self.group_by,
        }


def report_query(form: dict[str, str], today: date) -> tuple[ReportQuery, dict[str, str]]:
    """The report a person asked for, and the fields that are wrong (field → message code).

    Without dates, the next four weeks from `today`: the bookings there are to be seen; with
    errors, that default is what the page shows beside the messages."""
    errors: dict[str, str] = {}
    default = ReportQuery(today, today + timedelta(days=DEFAULT_REPORT_DAYS - 1))
    first, last = default.first, default.last
    for name in ("from", "to"):
        value = form.get(name, "").strip()
        if not value:
            continue
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            errors[name] = "not_a_date"
            continue
        if name == "from":
            first = parsed
        else:
            last = parsed
    group_by = form.get("group_by", "venue") or "venue"
    if group_by not in GROUPS:
        errors["group_by"] = "invalid_request"
        group_by = "venue"
    if not errors:
        if last < first:
            errors["to"] = "last_before_first"
        elif (last - first).days + 1 > LONGEST_REPORT_DAYS:
            errors["to"] = "range_too_long"
    if errors:
        return msgspec.structs.replace(default, group_by=group_by), errors
    return ReportQuery(first, last, group_by), errors


def row_label(group_by: str, key: str | None, label: str) -> str:
    """A message id for kinds and programmes (the API's label is their code); names as given."""
    if group_by == "kind" and key in KIND_NAMES:
        return KIND_NAMES[key]
    if group_by == "programme" and key in PROGRAMME_NAMES:
        return PROGRAMME_NAMES[key]
    return label


class HeatCell(msgspec.Struct, frozen=True):
    """One hour of one weekday: ISO weekday (1 = Monday), venue-local hour, utilisation."""

    weekday: int
    hour: int
    utilisation: float


class HeatmapSummary(msgspec.Struct, frozen=True):
    """What the picture shows, for its text alternative: the busiest hours and, of the hours
    that were used at all, the quietest (an hour never booked may simply be closed)."""

    busiest: tuple[HeatCell, ...]
    quietest: tuple[HeatCell, ...]
    used_hours: int


def heatmap_summary(matrix: list[list[float]], *, shown: int = 3) -> HeatmapSummary:
    """The `shown` busiest and quietest used hours of a weekday-by-hour matrix (7 rows of 24)."""
    used = [
        HeatCell(weekday=day + 1, hour=hour, utilisation=value)
        for day, row in enumerate(matrix)
        for hour, value in enumerate(row)
        if value > 0
    ]
    # Ties in the order of the week: Monday's 18:00 before Tuesday's.
    by_use = sorted(used, key=lambda cell: (-cell.utilisation, cell.weekday, cell.hour))
    busiest = tuple(by_use[:shown])
    rest = [cell for cell in by_use if cell not in busiest]
    quietest = tuple(sorted(rest, key=lambda c: (c.utilisation, c.weekday, c.hour))[:shown])
    return HeatmapSummary(busiest=busiest, quietest=quietest, used_hours=len(used))


# ---------------------------------------------------------------------------------------------
# Matching runs

RUN_STATUS_NAMES: Final = {
    "queued": N_("Waiting to run"),
    "running": N_("Running"),
    "done": N_("Done"),
    "failed": N_("Failed"),
}
# Every reason the matching gives for a session it could not place (the lecturer service's
# `Reason`), in words a person acts on.
UNMATCHED_REASONS: Final = {
    "no_lecturer_with_topic": N_("Nobody in the corps teaches this topic."),
    "declined_by_all": N_(
        "Every lecturer who teaches this topic has declined this request or let the offer expire."
    ),
    "no_free_room": N_("No room of the venue is free for a whole session at any time this month."),
    "no_free_room_when_preferred": N_(
        "Rooms are free this month, but never at the times the school prefers."
    ),
    "no_common_free_time": N_(
        "No lecturer with the topic is available when a room is free and the school prefers, "
        "or not on enough different days for all the sessions."
    ),
    "corps_at_monthly_limit": N_(
        "Lecturers could give it, but every one of them has reached their monthly limit."
    ),
    "outcompeted": N_(
        "The lecturers who could give it were needed for other sessions at the same times."
    ),
    "search_limit": N_(
        "A lecturer, a room and a day are still free for it: the run ran out of time. "
        "Another run may place it."
    ),
}
UNKNOWN_REASON: Final = N_("The matching gave no reason that this page knows.")
RUN_FAILURES: Final = {
    "booking_unavailable": N_("The booking service could not be reached; no rooms were held."),
}
UNKNOWN_FAILURE: Final = N_("The run stopped with an error; no rooms were held. Start it again.")


def reason_message(code: str) -> str:
    return UNMATCHED_REASONS.get(code, UNKNOWN_REASON)


def failure_message(code: str | None) -> str:
    return RUN_FAILURES.get(code or "", UNKNOWN_FAILURE)


def parse_month(text: str) -> str | None:
    """`YYYY-MM` (as `<input type=month>` sends it), or None where it is no month."""
    text = text.strip()
    if len(text) != len("2027-03"):
        return None
    try:
        date.fromisoformat(f"{text}-01")
    except ValueError:
        return None
    return text


def run_month(text: str, today: date) -> tuple[str, str | None]:
    """The month a person asked a run for, and what is wrong with it, if anything: a past
    month cannot be matched (the lecturer service also refuses one too far ahead)."""
    month = parse_month(text)
    if month is None:
        return text.strip(), "not_a_month"
    if date.fromisoformat(f"{month}-01") < today.replace(day=1):
        return month, "month_in_past"
    return month, None


def next_month(today: date) -> str:
    following = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following.isoformat()[:7]


# ---------------------------------------------------------------------------------------------
# Members and invitations


def invitable_roles(role: str) -> tuple[str, ...]:
    """The roles `role` may invite to: the office any person's role, a manager its own only."""
    if role == OFFICE:
        return PERSON_ROLES
    if role in MANAGERS:
        return (role,)
    return ()


def may_end_membership(viewer_role: str, member_role: str) -> bool:
    """Whether the viewer may end a membership in its org's list: the office any, a manager one
    of its own role (identity checks this again)."""
    return viewer_role == OFFICE or (viewer_role in MANAGERS and member_role == viewer_role)


class InviteForm(msgspec.Struct, frozen=True):
    email: str
    role: str
    locale: str
    name: str = ""
    lecturer_id: str = ""


def invite_form(
    form: dict[str, str], roles: tuple[str, ...], locales: tuple[str, ...]
) -> tuple[InviteForm, dict[str, str]]:
    """An invitation as typed, and its wrong fields. The address's own form is identity's to
    judge; here only what the page offered is checked."""
    invite = InviteForm(
        email=form.get("email", "").strip(),
        role=form.get("role", ""),
        locale=form.get("locale", ""),
        name=form.get("name", "").strip(),
        lecturer_id=form.get("lecturer_id", "").strip(),
    )
    errors: dict[str, str] = {}
    if not invite.email:
        errors["email"] = "required"
    if invite.role not in roles:
        errors["role"] = "forbidden" if invite.role else "required"
    if invite.locale not in locales:
        errors["locale"] = "required"
    if invite.role == LECTURER and not invite.lecturer_id:
        errors["lecturer_id"] = "lecturer_id_required"
    return invite, errors


def invitation_body(invite: InviteForm, org: str) -> dict[str, str]:
    """The identity API's body for `invite` into `org`: optional fields only where typed."""
    body = {"email": invite.email, "org": org, "role": invite.role, "locale": invite.locale}
    if invite.name:
        body["name"] = invite.name
    if invite.role == LECTURER and invite.lecturer_id:
        body["lecturer_id"] = invite.lecturer_id
    return body


# What the members page says after each of its actions (`?done=`).
DONE_MESSAGES: Final = {
    "invited": N_("The invitation is on its way."),
    "withdrawn": N_("The invitation was withdrawn: its link no longer works."),
    "resent": N_("A new invitation was sent: the older link no longer works."),
    "ended": N_("The membership has ended."),
    "gone": N_("That invitation was no longer open: it was used, withdrawn or has expired."),
}
