"""Words the pages show for what the APIs answer, as message ids of the one catalogue.

`N_` marks a message id for `pybabel extract` without translating it: the page translates it
when it is shown, in the reader's language.
"""

from __future__ import annotations

from typing import Final


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name, which extraction knows)
    return message


ROLE_NAMES: Final = {
    "office": N_("Community education office"),
    "venue_manager": N_("Venue manager"),
    "community_manager": N_("Community manager"),
    "lecturer": N_("Lecturer"),
}

# Features a venue gives its rooms and equipment; one it names otherwise is shown as it wrote it.
FEATURE_NAMES: Final = {
    "computers": N_("computers"),
    "lighting": N_("stage lighting"),
    "mirrors": N_("mirror wall"),
    "piano": N_("piano"),
    "portable": N_("portable"),
    "projector": N_("projector"),
    "sound_system": N_("sound system"),
    "stage": N_("stage"),
    "sports": N_("sports ground"),
    "whiteboard": N_("whiteboard"),
}

# The API's error codes in words, for a message next to the field or at the top of a form.
_CODES: Final = {
    "invalid_credentials": N_("The e-mail address or the password is wrong."),
    "too_many_attempts": N_("Too many failed sign-ins. Wait a few minutes and try again."),
    "invalid_grant": N_("Your sign-in has ended. Please sign in again."),
    "not_invited": N_("There is no invitation for this account. Ask your office to invite you."),
    "account_exists": N_(
        "This address already has an account: sign in with its password to accept the invitation."
    ),
    "account_disabled": N_("This account has been disabled."),
    "access_denied": N_("The city sign-in was cancelled."),
    "provider_error": N_("The city sign-in did not work. Please try again."),
    "invalid_id_token": N_("The city sign-in did not work. Please try again."),
    "oidc_unavailable": N_("The city sign-in cannot be reached just now. Please try later."),
    "invitation_expired": N_("This invitation has been used, withdrawn or has expired."),
    "reset_expired": N_("This link has been used or has expired. Ask for a new one."),
    "not_found": N_("This link is not known. Check that you copied all of it."),
    "forbidden": N_("You may not do this in your current role."),
    "weak_password": N_(
        "The password must have at least 10 characters and must not be your e-mail address."
    ),
    "current_password_required": N_("Enter your current password to set a new one."),
    "wrong_password": N_("The current password is wrong."),
    "invalid_email": N_("Enter an e-mail address such as name@example.org."),
    "required": N_("This field is required."),
    "invalid_request": N_("Please check what you entered."),
    "unavailable": N_("A service of the suite does not answer just now. Please try again."),
    "not_a_count": N_("Enter a whole number, such as 30."),
    "not_minutes": N_("Enter minutes between 15 and 1440."),
    "not_a_date": N_("Enter a date such as 2026-11-23."),
    "not_a_time": N_("Enter a time such as 18:00."),
    "date_for_times": N_("Choose a date for these times."),
    "end_before_start": N_("The end must come after the start."),
    "state_mismatch": N_("This sign-in was not started here, or took too long. Start again."),
    # The lecturer's pages
    "choose_weekdays": N_("Choose at least one day of the week."),
    "offer_closed": N_(
        "This offer can no longer be answered: it was answered already, withdrawn, or its time "
        "has passed."
    ),
    # The office's pages: reports, matching runs, members and invitations.
    "last_before_first": N_("The last day must not come before the first."),
    "range_too_long": N_("Choose at most a year at a time."),
    "not_a_month": N_("Enter a month such as 2027-03."),
    "month_in_past": N_("This month is over: choose this month or a later one."),
    "month_too_far": N_("This month is too far ahead."),
    "lecturer_id_required": N_("A lecturer's invitation needs the lecturer's id from the corps."),
    "already_member": N_("This address already holds this role in the organisation."),
    # The venue manager's desk: approvals, rooms and equipment, opening hours.
    "reason_required": N_("Give a reason: the booker reads it in the rejection."),
    "reason_too_long": N_("Keep the reason under 500 characters."),
    "invalid_transition": N_("This booking has already been decided or cancelled."),
    "end_date_before_start": N_("The last day must not be before the first day."),
    "spans_required": N_("Give at least one span of opening hours, or mark the period closed."),
    "closed_has_spans": N_("A closed period has no opening hours: leave the spans empty."),
    "span_empty": N_("A span must not end when it starts."),
    "weekdays_required": N_("Tick at least one weekday."),
    "weekdays_repeated": N_("Tick each weekday once."),
    "min_over_max": N_("The shortest booking must not be longer than the longest."),
    "not_whole_slots": N_("The shortest booking must be a whole number of slots."),
    "too_small": N_("This number is too small."),
    "too_large": N_("This number is too large."),
    "too_long": N_("This is too long."),
    # A room as part of a hall (the registry's `invalid_hierarchy` and `resource_in_use`).
    "hall_elsewhere": N_("Choose another room of this venue."),
    "hall_not_room": N_("Only a room can be divided into parts, not equipment."),
    "hall_too_deep": N_("A hall can be divided at most twice: a hall, its halves, their quarters."),
    "hall_cycle": N_("A room cannot be part of itself or of one of its own parts."),
    "resource_in_use": N_(
        "This room or one of its parts has bookings to come: it can be moved into or out of a "
        "hall once they are over or cancelled."
    ),
}


def message_for(code: str) -> str:
    """The message id for an API code; a code with no words of its own gets the general one."""
    return _CODES.get(code, _CODES["invalid_request"])
