# ruff: noqa: RUF001 - Chinese text takes full-width punctuation (commas, brackets), as it should
"""鹭湖市 (Luhu), a fictional county-level city and its community-education network, as plain data.

Ten towns (镇/街道) with their communities; per town a community-education centre (社区教育中心),
citizen schools (市民学校), a primary and a middle school that open after hours, a cultural station
(文化站); and city-wide a cultural centre (文化馆), an elderly university (老年大学) with
branches, an open university, a party-and-people service centre here and there, and an enterprise
training centre. Rooms and equipment with their rules and opening hours (term, vacation, exam
weeks, CN public holidays), a corps of forty lecturers, a season of bookings and next month's
lecture requests.

Everything is built from `seed` and `today` alone (no clock, no I/O), so the same arguments give
the same city. Bookings are placed only where the city's own opening hours, the rules of each
resource and the bookings already placed allow, so the booking service accepts every one.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

import msgspec
from msgspec.structs import replace

from services.registry.domain import hours as opening
from services.registry.domain.hours import OpeningHours
from services.registry.domain.published import OpeningHoursDoc, to_hours
from shared.contracts import Location, Rules
from shared.time import next_month

DEFAULT_SEED = 2026
CITY_NAME = "鹭湖市"
TIMEZONE = "Asia/Shanghai"
ZONE = ZoneInfo(TIMEZONE)
HOLIDAY_CALENDAR = "CN"
OFFICE_ORG = "luhu-community-education-office"
LECTURER_CORPS_ORG = "luhu-lecturer-corps"
FIRST_DAY = 2  # bookings start the day after tomorrow: past any lead time of a day or less
LAST_DAY = 63  # ...and within nine weeks, far inside the default 90-day horizon
GRID_MINUTES = 30  # every booking starts and ends on the half hour: on any 15- or 30-minute grid
USUAL_STARTS = frozenset(
    h * 60 + m for h, m in ((8, 30), (9, 0), (9, 30), (14, 0), (14, 30), (18, 30), (19, 0))
)

Programme = Literal["degree", "workforce", "assistance", "youth", "elderly", "citizen"]
VenueKind = Literal[
    "school",
    "citizen_school",
    "community_education_centre",
    "service_centre",
    "cultural_centre",
    "elderly_university",
    "training_college",
    "enterprise_training",
]
VENUE_KINDS: tuple[VenueKind, ...] = (
    "school",
    "citizen_school",
    "community_education_centre",
    "service_centre",
    "cultural_centre",
    "elderly_university",
    "training_college",
    "enterprise_training",
)
# What to do with a booking once it is made: leave it as the service made it (confirmed, or
# pending where a resource requires approval), or approve, reject or cancel it.
Then = Literal["keep", "approve", "reject", "cancel"]

# The lecturers' topics; the first six are the office's core programme.
CORE_TOPICS = ("健康养生", "法律普及", "家庭教育", "数字技能", "老年照护", "非遗文化")
TOPICS = (*CORE_TOPICS, "心理健康", "防范电信诈骗", "垃圾分类与环保", "书法艺术", "安全急救")


# The data


class SpanDoc(msgspec.Struct, frozen=True):
    weekdays: tuple[int, ...]
    start: str
    end: str


class PeriodDoc(msgspec.Struct, frozen=True):
    name: str
    start_date: date
    end_date: date | None = None
    spans: tuple[SpanDoc, ...] = ()
    closed: bool = False


class HoursDoc(msgspec.Struct, frozen=True):
    """Opening hours in the shape of the registry's `PUT .../opening-hours`."""

    periods: tuple[PeriodDoc, ...]
    public_holidays: Literal["closed", "open"] = "closed"


class Org(msgspec.Struct, frozen=True):
    id: str
    name: str


class AreaPlan(msgspec.Struct, frozen=True):
    key: str
    name: str
    level: Literal["city", "town", "community"]
    parent: str | None = None
    population: int | None = None


class VenuePlan(msgspec.Struct, frozen=True):
    key: str
    name: str
    kind: VenueKind
    area: str
    town: str
    owner_org: str
    address: str
    location: Location
    description: str
    hours: HoursDoc


class ResourcePlan(msgspec.Struct, frozen=True):
    key: str
    venue: str
    name: str
    type: Literal["room", "equipment"]
    capacity: int | None
    features: tuple[str, ...]
    requires_approval: bool
    rules: Rules
    description: str | None = None
    hours: HoursDoc | None = None  # replaces the venue's hours for this resource


class Slot(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime


class BookingPlan(msgspec.Struct, frozen=True):
    """One booking request: a single one, or a weekly series (`rrule`) whose `occurrences` are
    listed so that they can be checked."""

    key: str
    org: str
    venue: str
    resources: tuple[str, ...]
    start: datetime
    end: datetime
    purpose: str
    programme: Programme
    attendees: int
    occurrences: tuple[Slot, ...]
    rrule: str | None = None
    then: Then = "keep"
    reason: str | None = None


class LecturerPlan(msgspec.Struct, frozen=True):
    key: str
    name: str
    topics: tuple[str, ...]
    languages: tuple[str, ...]
    area: str
    location: Location
    max_per_month: int
    availability: tuple[SpanDoc, ...]
    blackout_dates: tuple[date, ...]
    email: str
    phone: str


class LectureRequestPlan(msgspec.Struct, frozen=True):
    key: str
    venue: str
    topic: str
    programme: Programme
    month: str
    sessions: int
    minutes: int
    audience: str
    preferred: tuple[SpanDoc, ...]


class City(msgspec.Struct, frozen=True):
    name: str
    seed: int
    today: date
    office_org: str
    orgs: tuple[Org, ...]
    areas: tuple[AreaPlan, ...]
    venues: tuple[VenuePlan, ...]
    resources: tuple[ResourcePlan, ...]
    bookings: tuple[BookingPlan, ...]
    lecturers: tuple[LecturerPlan, ...]
    requests: tuple[LectureRequestPlan, ...]
    showcase_venue_org: str  # a school's org: the venue_manager token `up --demo` announces
    showcase_community_org: str  # a centre's org: the community_manager token it announces

    def venue(self, key: str) -> VenuePlan:
        return next(venue for venue in self.venues if venue.key == key)

    def resource(self, key: str) -> ResourcePlan:
        return next(resource for resource in self.resources if resource.key == key)


# Opening hours


def _span(weekdays: Iterable[int], start: str, end: str) -> SpanDoc:
    return SpanDoc(weekdays=tuple(weekdays), start=start, end=end)


WEEKDAYS = (1, 2, 3, 4, 5)
TERM = (_span(WEEKDAYS, "18:00", "21:00"), _span((6, 7), "08:30", "17:00"))
WINTER_VACATION = (_span((1, 2, 3, 4, 5, 6), "09:00", "16:30"),)
SUMMER_VACATION = (_span(WEEKDAYS, "08:30", "17:00"), _span((6,), "09:00", "12:00"))


def _academic_years(today: date) -> range:
    """The school years (by the year they start) around `today`: last, this and next."""
    this = today.year if today.month >= 8 else today.year - 1
    return range(this - 1, this + 2)


def school_hours(today: date, term: Sequence[SpanDoc] = TERM) -> HoursDoc:
    """Schools open to the community outside lessons: term weekday evenings and weekends, other
    hours in the vacations, closed in exam weeks and on public holidays."""
    periods: list[PeriodDoc] = []
    for year in _academic_years(today):
        nxt = year + 1
        periods += [
            PeriodDoc(f"{year}年秋季学期", date(year, 9, 1), date(nxt, 1, 23), tuple(term)),
            PeriodDoc(f"{year}年秋季期末考试周", date(nxt, 1, 17), date(nxt, 1, 23), closed=True),
            PeriodDoc(f"{nxt}年寒假", date(nxt, 1, 24), date(nxt, 2, 22), WINTER_VACATION),
            PeriodDoc(f"{nxt}年春季学期", date(nxt, 2, 23), date(nxt, 7, 3), tuple(term)),
            PeriodDoc(f"{nxt}年春季期末考试周", date(nxt, 6, 27), date(nxt, 7, 3), closed=True),
            PeriodDoc(f"{nxt}年暑假", date(nxt, 7, 4), date(nxt, 8, 31), SUMMER_VACATION),
        ]
    return HoursDoc(periods=tuple(periods))


def _all_year(today: date, *spans: SpanDoc, name: str = "常年开放") -> PeriodDoc:
    return PeriodDoc(name, date(_academic_years(today)[0], 1, 1), None, spans)


def centre_hours(today: date, closed_on: date | None = None) -> HoursDoc:
    """Community-education centres open by day as well as in the evening."""
    periods = [
        _all_year(
            today,
            _span(WEEKDAYS, "08:30", "21:00"),
            _span((6,), "08:30", "17:00"),
            _span((7,), "14:00", "17:00"),
        )
    ]
    if closed_on is not None:
        periods.append(PeriodDoc("消防设施年检（闭馆一天）", closed_on, closed_on, closed=True))
    return HoursDoc(periods=tuple(periods))


def citizen_school_hours(today: date) -> HoursDoc:
    return HoursDoc(
        periods=(
            _all_year(
                today,
                _span(WEEKDAYS, "18:30", "21:00"),
                _span((6,), "09:00", "11:30"),
                _span((6,), "14:00", "17:00"),
            ),
        )
    )


def cultural_hours(today: date) -> HoursDoc:
    """Closed on Mondays, as cultural centres are; late on weekday evenings."""
    return HoursDoc(
        periods=(
            _all_year(
                today,
                _span((2, 3, 4, 5, 6, 7), "09:00", "17:00"),
                _span((2, 3, 4, 5), "19:00", "21:00"),
            ),
        )
    )


def elderly_university_hours(today: date) -> HoursDoc:
    """Two semesters of weekday mornings and afternoons; nothing in between."""
    spans = (_span(WEEKDAYS, "08:00", "11:30"), _span(WEEKDAYS, "13:30", "16:30"))
    periods: list[PeriodDoc] = []
    for year in _academic_years(today):
        periods += [
            PeriodDoc(f"{year}年秋季学期", date(year, 9, 1), date(year + 1, 1, 15), spans),
            PeriodDoc(f"{year + 1}年春季学期", date(year + 1, 2, 24), date(year + 1, 6, 30), spans),
        ]
    return HoursDoc(periods=tuple(periods))


def service_centre_hours(today: date) -> HoursDoc:
    return HoursDoc(periods=(_all_year(today, _span(range(1, 8), "08:30", "20:30")),))


def open_university_hours(today: date) -> HoursDoc:
    return HoursDoc(
        periods=(
            _all_year(today, _span(WEEKDAYS, "18:30", "21:00"), _span((6, 7), "08:30", "17:00")),
        )
    )


def enterprise_hours(today: date) -> HoursDoc:
    return HoursDoc(
        periods=(
            _all_year(today, _span(WEEKDAYS, "08:30", "17:30"), _span((6,), "09:00", "12:00")),
        )
    )


def computer_room_hours(today: date) -> HoursDoc:
    """A school's computer room: weekends in term (weekday evenings are for maintenance), weekday
    daytime in the vacations; closed in exam weeks like the school."""
    weekend = (_span((6, 7), "08:30", "11:30"), _span((6, 7), "13:30", "16:30"))
    return school_hours(today, term=weekend)


def theatre_hours(today: date) -> HoursDoc:
    """A theatre plays on holidays too: Friday to Sunday afternoons and evenings."""
    return HoursDoc(
        periods=(_all_year(today, _span((5, 6, 7), "14:00", "21:30"), name="演出季"),),
        public_holidays="open",
    )


@functools.cache
def _as_registry_reads(doc: HoursDoc) -> OpeningHours:
    """The rules the registry makes of this document: bookings are placed by its own reading."""
    return to_hours(msgspec.convert(msgspec.to_builtins(doc), OpeningHoursDoc))


def _minute_of(wall: time) -> int:
    return wall.hour * 60 + wall.minute


def open_spans(hours: HoursDoc, day: date) -> list[tuple[int, int]]:
    """The wall-clock spans (minutes from midnight) open on `day`, holidays aside: callers keep
    away from the days `quiet_days` names."""
    period = opening.winning_period(_as_registry_reads(hours).periods, day)
    if period is None or period.closed:
        return []
    return sorted(
        (_minute_of(span.start), _minute_of(span.end))
        for span in period.spans
        if day.isoweekday() in span.weekdays and span.end > span.start
    )


def quiet_days(first: date, last: date) -> frozenset[date]:
    """Days whose hours the holiday calendar changes, as the registry reads it: days off (with
    the weekend days bridging two of them) and make-up working days (which take a Monday's)."""
    calendar = opening.holiday_calendar(HOLIDAY_CALENDAR, range(first.year, last.year + 1))
    return calendar.days_off | calendar.workdays


# Places

TOWNS: tuple[tuple[str, str, int, float, float, tuple[tuple[str, str], ...], str], ...] = (
    # key, name, population, lat, lon, communities, main road
    ("chengdong", "城东街道", 86000, 29.953, 121.142,
     (("donghu", "东湖社区"), ("wenchang", "文昌社区"), ("heping", "和平社区")), "文昌路"),
    ("chengxi", "城西街道", 72000, 29.948, 121.061,
     (("ximen", "西门社区"), ("xinhua", "新华社区"), ("fengming", "凤鸣社区")), "新华路"),
    ("luhu", "鹭湖街道", 64000, 29.921, 121.104,
     (("luhu", "鹭湖社区"), ("hetang", "荷塘社区")), "湖滨大道"),
    ("meiling", "梅岭镇", 41000, 30.032, 121.018,
     (("meiling", "梅岭社区"), ("xinghua", "杏花村")), "梅岭大街"),
    ("tongxi", "桐溪镇", 38000, 29.874, 121.209,
     (("tongxi", "桐溪社区"), ("qiaotou", "桥头村")), "桐溪路"),
    ("shibu", "石埠镇", 35000, 29.842, 121.287,
     (("shibu", "石埠社区"), ("yugang", "渔港村")), "石埠街"),
    ("baisha", "白沙镇", 29000, 30.061, 121.163,
     (("baisha", "白沙社区"), ("shawan", "沙湾村")), "白沙路"),
    ("liutang", "柳塘镇", 33000, 29.991, 120.962,
     (("liutang", "柳塘社区"), ("heye", "荷叶村")), "柳塘中路"),
    ("yunao", "云岙镇", 22000, 29.803, 121.033,
     (("yunao", "云岙社区"), ("zhulin", "竹林村")), "云岙街"),
    ("wangchao", "望潮镇", 27000, 29.897, 121.341,
     (("wangchao", "望潮社区"), ("haitang", "海塘村")), "望潮路"),
)  # fmt: skip
TOWN_NAMES = {town[0]: town[1] for town in TOWNS}
URBAN = frozenset({"chengdong", "chengxi", "luhu"})
SCHOOLS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    # town: (primary key, name), (middle key, name)
    "chengdong": (("shiyan-xiaoxue", "鹭湖市实验小学"), ("yizhong", "鹭湖市第一中学")),
    "chengxi": (("chengxi-xiaoxue", "鹭湖市城西小学"), ("erzhong", "鹭湖市第二中学")),
    "luhu": (("luhu-xiaoxue", "鹭湖街道中心小学"), ("sanzhong", "鹭湖市第三中学")),
}
SERVICE_CENTRE_TOWNS = ("chengdong", "chengxi", "tongxi", "baisha")
KITCHEN_TOWNS = frozenset({"shibu", "chengxi"})
SHOWCASE_CENTRE = "cec-chengdong"


def _rules(
    *,
    minimum: int = 30,
    maximum: int = 240,
    lead: int = 0,
    buffer: int = 0,
    slot: int = 15,
) -> Rules:
    return Rules(
        min_minutes=minimum,
        max_minutes=maximum,
        lead_minutes=lead,
        buffer_minutes=buffer,
        slot_minutes=slot,
    )


APPROVAL = {"minimum": 60, "lead": 24 * 60, "buffer": 30}


class _Catalogue:
    """Collects areas, venues and resources as the city is laid out."""

    def __init__(self, today: date, rng: random.Random) -> None:
        self.today = today
        self.rng = rng
        self.areas: list[AreaPlan] = []
        self.venues: list[VenuePlan] = []
        self.resources: list[ResourcePlan] = []
        self.orgs: dict[str, str] = {
            OFFICE_ORG: "鹭湖市社区教育办公室",
            LECTURER_CORPS_ORG: "鹭湖市社区教育讲师团",
        }

    def org(self, org_id: str, name: str) -> str:
        self.orgs.setdefault(org_id, name)
        return org_id

    def venue(
        self,
        key: str,
        name: str,
        kind: VenueKind,
        *,
        area: str,
        town: str,
        owner: tuple[str, str],
        address: str,
        near: tuple[float, float],
        description: str,
        hours: HoursDoc,
    ) -> str:
        jitter = (self.rng.uniform(-0.01, 0.01), self.rng.uniform(-0.01, 0.01))
        self.venues.append(
            VenuePlan(
                key=key,
                name=name,
                kind=kind,
                area=area,
                town=town,
                owner_org=self.org(*owner),
                address=address,
                location=Location(round(near[0] + jitter[0], 5), round(near[1] + jitter[1], 5)),
                description=description,
                hours=hours,
            )
        )
        return key

    def room(
        self,
        venue: str,
        name: str,
        capacity: int,
        features: Iterable[str],
        *,
        rules: Rules | None = None,
        approval: bool = False,
        description: str | None = None,
        hours: HoursDoc | None = None,
    ) -> None:
        self.resources.append(
            ResourcePlan(
                key=f"{venue}/{len(self.resources):03d}",
                venue=venue,
                name=name,
                type="room",
                capacity=capacity,
                features=tuple(sorted(features)),
                requires_approval=approval,
                rules=rules or Rules(),
                description=description,
                hours=hours,
            )
        )

    def equipment(self, venue: str, name: str, features: Iterable[str], description: str) -> None:
        self.resources.append(
            ResourcePlan(
                key=f"{venue}/{len(self.resources):03d}",
                venue=venue,
                name=name,
                type="equipment",
                capacity=None,
                features=tuple(sorted(features)),
                requires_approval=False,
                rules=_rules(),
                description=description,
            )
        )


def _schools(
    c: _Catalogue,
    today: date,
    *,
    town: str,
    town_name: str,
    road: str,
    communities: Sequence[tuple[str, str]],
    near: tuple[float, float],
) -> None:
    """A primary and a middle school of the town, open to the community outside lessons."""
    rng = c.rng
    if town in SCHOOLS:
        (primary_key, primary_name), (middle_key, middle_name) = SCHOOLS[town]
    else:
        short = town_name.removesuffix("镇")
        primary_key, primary_name = f"{town}-xiaoxue", f"{town_name}中心小学"
        middle_key, middle_name = f"{town}-zhongxue", f"{short}初级中学"
    for key, name, middle in (
        (primary_key, primary_name, False),
        (middle_key, middle_name, True),
    ):
        venue = c.venue(
            f"{town}/{key}",
            name,
            "school",
            area=f"{town}/{rng.choice(communities)[0]}",
            town=town,
            owner=(f"school-{key}", name),
            address=f"{CITY_NAME}{town_name}{road}{rng.randint(100, 400)}号",
            near=near,
            description="学期内工作日晚间及周末、寒暑假白天向社区开放；考试周和法定节假日不开放",
            hours=school_hours(today),
        )
        if middle:
            c.room(
                venue,
                "多功能报告厅",
                rng.choice((200, 240, 300)),
                ("projector", "sound_system", "stage"),
                rules=_rules(**APPROVAL),
                approval=True,
                description="需学校审批",
            )
            c.room(
                venue,
                "计算机教室",
                48,
                ("computers", "projector"),
                rules=_rules(buffer=15),
                hours=computer_room_hours(today),
                description="学期内仅周末开放",
            )
            c.room(venue, "风雨操场", 300, ("sports",), rules=_rules(minimum=60))
        else:
            c.room(venue, "舞蹈室", 40, ("mirrors", "piano"), rules=_rules(buffer=15))
            c.room(venue, "普通教室", 45, ("projector", "whiteboard"))
            if town in URBAN:
                c.room(venue, "音乐教室", 50, ("piano",))
            if key == "shiyan-xiaoxue":
                c.room(
                    venue,
                    "多功能报告厅",
                    260,
                    ("projector", "sound_system", "stage"),
                    rules=_rules(**APPROVAL),
                    approval=True,
                    description="需学校审批",
                )
                c.room(venue, "计算机教室", 45, ("computers", "projector"), rules=_rules(buffer=15))


def _lay_out(today: date, rng: random.Random) -> _Catalogue:
    """The areas, venues and resources of the city."""
    c = _Catalogue(today, rng)
    c.areas.append(AreaPlan("city", CITY_NAME, "city", None, 512000))
    for index, (town, town_name, population, lat, lon, communities, road) in enumerate(TOWNS):
        c.areas.append(AreaPlan(town, town_name, "town", "city", population))
        share = [rng.randint(3, 6) for _ in communities]
        for (community, community_name), part in zip(communities, share, strict=True):
            c.areas.append(
                AreaPlan(
                    f"{town}/{community}",
                    community_name,
                    "community",
                    town,
                    population * part // sum(share),
                )
            )
        first = f"{town}/{communities[0][0]}"
        near = (lat, lon)
        cec = (f"cec-{town}", f"{town_name}社区教育中心")

        centre = c.venue(
            f"{town}/cec",
            f"{town_name}社区教育中心",
            "community_education_centre",
            area=first,
            town=town,
            owner=cec,
            address=f"{CITY_NAME}{town_name}{road}{18 + index * 7}号",
            near=near,
            description="全天开放，承办市民课程、职业技能培训和老年教育",
            hours=centre_hours(today, today + timedelta(days=20) if town == "chengxi" else None),
        )
        c.room(
            centre,
            "多功能厅",
            rng.choice((120, 150, 180)),
            ("projector", "sound_system", "stage"),
            rules=_rules(minimum=60, buffer=30),
            description="阶梯座位，配有舞台和音响",
        )
        c.room(centre, "计算机教室", 40, ("computers", "projector"), rules=_rules(buffer=15))
        c.room(centre, "书法教室", 30, ("calligraphy_desks",))
        c.room(centre, "舞蹈室", 35, ("mirrors", "piano", "sound_system"), rules=_rules(buffer=15))
        if town in KITCHEN_TOWNS:
            c.room(centre, "烹饪实训室", 20, ("kitchen",), rules=_rules(minimum=60, buffer=30))
        c.equipment(centre, "投影仪（便携）", ("portable", "projector"), "可随教室一并借用")
        if town in URBAN or index % 2:
            c.equipment(centre, "笔记本电脑推车", ("laptops",), "30台笔记本电脑，含充电柜")

        # A citizen school in the town's first community, and in the second too in the city proper.
        for community, community_name in communities[: 2 if town in URBAN else 1]:
            school = c.venue(
                f"{town}/{community}/citizen",
                f"{community_name}市民学校",
                "citizen_school",
                area=f"{town}/{community}",
                town=town,
                owner=cec,
                address=f"{CITY_NAME}{town_name}{community_name}居委会二楼",
                near=(lat + rng.uniform(-0.02, 0.02), lon + rng.uniform(-0.02, 0.02)),
                description="由社区教育中心主办，晚间和周六向居民开放",
                hours=citizen_school_hours(today),
            )
            c.room(school, "活动室", rng.choice((40, 50, 60)), ("projector",))
            c.room(school, "小教室", 25, ("whiteboard",))

        _schools(
            c,
            today,
            town=town,
            town_name=town_name,
            road=road,
            communities=communities,
            near=near,
        )

        station = c.venue(
            f"{town}/wenhuazhan",
            f"{town_name}综合文化站",
            "cultural_centre",
            area=first,
            town=town,
            owner=(f"wenhua-{town}", f"{town_name}综合文化站"),
            address=f"{CITY_NAME}{town_name}{road}{rng.randint(1, 99)}号文化中心",
            near=near,
            description="周一闭馆",
            hours=cultural_hours(today),
        )
        c.room(station, "排练厅", 40, ("mirrors", "sound_system"), rules=_rules(buffer=15))
        c.room(station, "非遗传习室", 25, ("exhibits",))

        if town in SERVICE_CENTRE_TOWNS:
            community, community_name = communities[1]
            hall = c.venue(
                f"{town}/{community}/dangqun",
                f"{community_name}党群服务中心",
                "service_centre",
                area=f"{town}/{community}",
                town=town,
                owner=(f"sq-{town}-{community}", f"{community_name}居委会"),
                address=f"{CITY_NAME}{town_name}{community_name}{road}{rng.randint(1, 200)}号",
                near=near,
                description="每天开放，居民议事和社区活动",
                hours=service_centre_hours(today),
            )
            c.room(hall, "居民活动室", 50, ("projector",))
            c.room(hall, "议事厅", 20, ("whiteboard",))

    _city_wide(c, today)
    return c


def _city_wide(c: _Catalogue, today: date) -> None:
    centre = {town: (lat, lon) for town, _, _, lat, lon, _, _ in TOWNS}
    wenhuaguan = c.venue(
        "luhu/wenhuaguan",
        "鹭湖市文化馆",
        "cultural_centre",
        area="luhu/luhu",
        town="luhu",
        owner=("luhu-wenhuaguan", "鹭湖市文化馆"),
        address=f"{CITY_NAME}鹭湖街道湖滨大道1号",
        near=centre["luhu"],
        description="市级公共文化场馆，周一闭馆；小剧场演出季周五至周日开放，节假日照常",
        hours=cultural_hours(today),
    )
    c.room(
        wenhuaguan,
        "小剧场",
        280,
        ("lighting", "sound_system", "stage"),
        rules=_rules(minimum=60, lead=24 * 60, buffer=60),
        approval=True,
        hours=theatre_hours(today),
        description="需文化馆审批；演出前后各留一小时装台拆台",
    )
    c.room(wenhuaguan, "舞蹈室", 40, ("mirrors", "piano", "sound_system"), rules=_rules(buffer=15))
    c.room(wenhuaguan, "美术教室", 35, ("easels",))
    c.room(wenhuaguan, "非遗传习馆", 30, ("exhibits",))

    daxue = ("luhu-laonian-daxue", "鹭湖市老年大学")
    main = c.venue(
        "chengdong/laonian-daxue",
        "鹭湖市老年大学",
        "elderly_university",
        area="chengdong/heping",
        town="chengdong",
        owner=daxue,
        address=f"{CITY_NAME}城东街道和平路66号",
        near=centre["chengdong"],
        description="春秋两学期工作日白天上课，寒暑假不开放",
        hours=elderly_university_hours(today),
    )
    c.room(main, "书画室", 40, ("calligraphy_desks",))
    c.room(main, "声乐教室", 60, ("piano",))
    c.room(main, "舞蹈厅", 60, ("mirrors", "sound_system"), rules=_rules(buffer=15))
    c.room(main, "电脑教室", 40, ("computers", "projector"), rules=_rules(buffer=15))
    c.room(
        main,
        "报告厅",
        150,
        ("projector", "sound_system"),
        rules=_rules(**APPROVAL),
        approval=True,
        description="需老年大学审批",
    )
    for town, name in (("meiling", "梅岭分校"), ("shibu", "石埠分校")):
        branch = c.venue(
            f"{town}/laonian-daxue",
            f"鹭湖市老年大学{name}",
            "elderly_university",
            area=f"{town}/{town}",
            town=town,
            owner=daxue,
            address=f"{CITY_NAME}{TOWN_NAMES[town]}社区教育中心三楼",
            near=centre[town],
            description="与镇社区教育中心合署办学",
            hours=elderly_university_hours(today),
        )
        c.room(branch, "教室", 40, ("projector",))
        c.room(branch, "书画室", 30, ("calligraphy_desks",))

    open_university = c.venue(
        "chengxi/kaifang-daxue",
        "鹭湖市开放大学",
        "training_college",
        area="chengxi/xinhua",
        town="chengxi",
        owner=("luhu-open-university", "鹭湖市开放大学"),
        address=f"{CITY_NAME}城西街道新华路200号",
        near=centre["chengxi"],
        description="成人学历教育，工作日晚间和周末面授",
        hours=open_university_hours(today),
    )
    c.room(open_university, "面授教室", 60, ("projector", "whiteboard"))
    c.room(open_university, "计算机机房", 50, ("computers", "projector"), rules=_rules(buffer=15))
    c.room(
        open_university,
        "录播室",
        10,
        ("recording",),
        rules=_rules(minimum=60, lead=24 * 60, buffer=30),
        approval=True,
    )

    textile = c.venue(
        "tongxi/fangzhi",
        "鹭湖纺织集团职工培训中心",
        "enterprise_training",
        area="tongxi/qiaotou",
        town="tongxi",
        owner=("luhu-textile-group", "鹭湖纺织集团"),
        address=f"{CITY_NAME}桐溪镇工业园区纺织路8号",
        near=centre["tongxi"],
        description="企业培训中心，向社区开放职业技能培训",
        hours=enterprise_hours(today),
    )
    c.room(
        textile,
        "实训车间",
        30,
        ("sewing_machines",),
        rules=_rules(minimum=60, lead=24 * 60, buffer=30),
        approval=True,
    )
    c.room(textile, "培训教室", 50, ("projector", "whiteboard"))


# Who books, and what


class Course(NamedTuple):
    purpose: str
    programme: Programme
    attendees: tuple[int, int]
    minutes: tuple[int, ...]
    needs: tuple[str, ...] = ()
    gear: str | None = (
        None  # a feature of equipment to borrow with the room, where the venue has it
    )


class Booker(NamedTuple):
    org: str
    name: str
    courses: tuple[Course, ...]
    where: Callable[[VenuePlan], bool]
    wanted: int  # how many single bookings it makes


def _kinds(*kinds: VenueKind, towns: Iterable[str] | None = None) -> Callable[[VenuePlan], bool]:
    allowed = None if towns is None else frozenset(towns)
    return lambda venue: venue.kind in kinds and (allowed is None or venue.town in allowed)


CEC_COURSES = (
    Course("智能手机应用入门", "elderly", (15, 35), (90, 120), ("projector",)),
    Course("书法入门", "citizen", (12, 28), (90, 120), ("calligraphy_desks",)),
    Course("太极拳基础", "elderly", (15, 30), (60, 90), ("mirrors",)),
    Course("家庭急救知识讲座", "citizen", (30, 100), (90,), ("projector",), "sound_system"),
    Course("社区合唱团排练", "citizen", (20, 40), (120,), ("piano",)),
    Course("摄影基础", "citizen", (12, 30), (120,), ("projector",)),
    Course("电脑基础与办公软件", "citizen", (15, 38), (120,), ("computers",)),
    Course("亲子阅读工作坊", "youth", (10, 25), (90,), ()),
    Course("广场舞编排", "elderly", (15, 35), (90,), ("mirrors",)),
    Course("垃圾分类宣讲", "citizen", (30, 80), (60, 90), ("projector",)),
    Course("居民议事会", "citizen", (10, 20), (60, 90), ("whiteboard",)),
)

BOOKERS: tuple[Booker, ...] = (
    *(
        Booker(
            f"cec-{town}",
            f"{name}社区教育中心",
            CEC_COURSES,
            _kinds(
                "community_education_centre",
                "citizen_school",
                "school",
                "service_centre",
                towns=(town,),
            ),
            6,
        )
        for town, name, *_ in TOWNS
    ),
    Booker(
        "luhu-open-university",
        "鹭湖市开放大学",
        (
            Course("学历教育面授：行政管理", "degree", (20, 55), (180, 240), ("projector",)),
            Course("学历教育面授：学前教育", "degree", (20, 50), (180,), ("projector",)),
            Course("计算机应用基础（统考辅导）", "degree", (20, 40), (180,), ("computers",)),
        ),
        _kinds(
            "training_college",
            "community_education_centre",
            towns=("chengxi", "chengdong", "luhu", "meiling"),
        ),
        10,
    ),
    Booker(
        "luhu-hrss-training",
        "鹭湖市职业技能培训指导中心",
        (
            Course("育婴员职业技能培训", "workforce", (20, 45), (180, 240), ("projector",)),
            Course("电工上岗证培训", "workforce", (15, 30), (240,), ("whiteboard",)),
            Course("电商直播技能培训", "workforce", (15, 35), (180,), ("computers",), "laptops"),
            Course("中式面点师培训", "workforce", (10, 20), (180,), ("kitchen",)),
            Course("缝纫工技能提升", "workforce", (10, 25), (240,), ("sewing_machines",)),
        ),
        _kinds("community_education_centre", "enterprise_training", "training_college"),
        10,
    ),
    Booker(
        "luhu-disabled-persons-federation",
        "鹭湖市残疾人联合会",
        (
            Course("残疾人手工编织培训", "assistance", (8, 20), (120,), ()),
            Course("困难家庭就业帮扶讲座", "assistance", (15, 40), (90,), ("projector",)),
            Course("新市民融入课堂", "assistance", (15, 35), (90,), ()),
            Course("助残电脑技能培训", "assistance", (8, 20), (120,), ("computers",)),
        ),
        _kinds("community_education_centre", "service_centre", "citizen_school"),
        8,
    ),
    Booker(
        "luhu-youth-league",
        "共青团鹭湖市委员会",
        (
            Course("青少年编程启蒙", "youth", (15, 35), (120,), ("computers",)),
            Course("周末书法班", "youth", (12, 25), (90,), ("calligraphy_desks",)),
            Course("青少年合唱团排练", "youth", (20, 45), (120,), ("piano",)),
            Course("少儿舞蹈", "youth", (12, 30), (90,), ("mirrors",)),
            Course("科普实验课", "youth", (15, 40), (90,), ("projector",), "projector"),
        ),
        _kinds("school", "community_education_centre", "cultural_centre"),
        10,
    ),
    Booker(
        "luhu-laonian-daxue",
        "鹭湖市老年大学",
        (
            Course("老年书画班", "elderly", (15, 30), (120,), ("calligraphy_desks",)),
            Course("老年声乐班", "elderly", (20, 50), (120,), ("piano",)),
            Course("老年智能手机班", "elderly", (15, 35), (90,), ("projector",)),
            Course("老年舞蹈班", "elderly", (15, 35), (90,), ("mirrors",)),
            Course("老年电脑班", "elderly", (15, 35), (120,), ("computers",)),
            Course("健康养生讲座", "elderly", (40, 140), (90,), ("projector",)),
        ),
        _kinds("elderly_university", "community_education_centre"),
        12,
    ),
    Booker(
        "luhu-elderly-association",
        "鹭湖市老年人协会",
        (
            Course("老年健康养生讲座", "elderly", (30, 100), (90,), ("projector",)),
            Course("防范电信诈骗宣讲", "elderly", (30, 90), (60, 90), ("projector",)),
            Course("越剧票友会", "elderly", (15, 35), (120,), ("mirrors",)),
        ),
        _kinds("community_education_centre", "service_centre", "cultural_centre", "citizen_school"),
        8,
    ),
    Booker(
        "luhu-womens-federation",
        "鹭湖市妇女联合会",
        (
            Course("家庭教育讲座：青春期沟通", "citizen", (30, 120), (90,), ("projector",)),
            Course("巧手编织", "citizen", (10, 25), (120,), ()),
            Course("婚姻家庭法律咨询", "citizen", (8, 20), (90,), ("whiteboard",)),
            Course("家长学校", "youth", (40, 150), (90,), ("projector", "sound_system")),
        ),
        _kinds("school", "community_education_centre", "citizen_school", "service_centre"),
        8,
    ),
    Booker(
        "luhu-wenhuaguan",
        "鹭湖市文化馆",
        (
            Course("非遗剪纸传习", "citizen", (10, 25), (120,), ("exhibits",)),
            Course("社区文艺汇演", "citizen", (100, 260), (180,), ("stage",)),
            Course("群众舞蹈辅导", "citizen", (15, 35), (90, 120), ("mirrors",)),
            Course("少儿美术", "youth", (12, 30), (90,), ("easels",)),
        ),
        _kinds("cultural_centre"),
        8,
    ),
)

SERIES = 16
SERIES_WEEKS = (6, 7, 8)
CANCELLED = 8
CANCEL_REASONS = (
    "报名人数不足，课程取消",
    "讲师临时有事，改期另行通知",
    "场地临时另有安排",
    "天气原因，活动取消",
)
REJECT_REASONS = ("该时段学校另有安排", "活动规模超出场地安全要求")


class _Ledger:
    """What each resource holds so far: bookings with their turnover buffers, as the booking
    service's database will hold them."""

    def __init__(self, buffers: dict[str, int]) -> None:
        self.buffers = buffers
        self.blocked: dict[str, list[tuple[datetime, datetime]]] = {key: [] for key in buffers}

    def free(self, resources: Sequence[str], start: datetime, end: datetime) -> bool:
        for key in resources:
            held_until = end + timedelta(minutes=self.buffers[key])
            if any(s < held_until and start < e for s, e in self.blocked[key]):
                return False
        return True

    def take(self, resources: Sequence[str], start: datetime, end: datetime) -> None:
        for key in resources:
            self.blocked[key].append((start, end + timedelta(minutes=self.buffers[key])))


class _Planner:
    """Places bookings where the hours, the rules and the bookings so far allow."""

    def __init__(self, city: _Catalogue, today: date, rng: random.Random) -> None:
        self.rng = rng
        self.today = today
        self.venues = {venue.key: venue for venue in city.venues}
        self.resources = city.resources
        self.by_venue: dict[str, list[ResourcePlan]] = {}
        for resource in city.resources:
            self.by_venue.setdefault(resource.venue, []).append(resource)
        self.ledger = _Ledger({r.key: r.rules.buffer_minutes for r in city.resources})
        self.days = [today + timedelta(days=n) for n in range(FIRST_DAY, LAST_DAY + 1)]
        self.quiet = quiet_days(self.days[0], self.days[-1])
        self.made: list[BookingPlan] = []

    def hours_of(self, resource: ResourcePlan) -> HoursDoc:
        return resource.hours or self.venues[resource.venue].hours

    def spans(self, resources: Sequence[ResourcePlan], day: date) -> list[tuple[int, int]]:
        """Stretches of `day` when every one of `resources` is open."""
        if day in self.quiet:
            return []
        common = open_spans(self.hours_of(resources[0]), day)
        for resource in resources[1:]:
            other = open_spans(self.hours_of(resource), day)
            common = [
                (max(a, c), min(b, d)) for a, b in common for c, d in other if max(a, c) < min(b, d)
            ]
        return common

    def choose(self, booker: Booker) -> tuple[Course, list[ResourcePlan], int] | None:
        """A course, the rooms (and gear) for it at one of the booker's venues, and a head count."""
        course = self.rng.choice(booker.courses)
        attendees = self.rng.randint(*course.attendees)
        venues = [venue for venue in self.venues.values() if booker.where(venue)]
        self.rng.shuffle(venues)
        for venue in venues:
            here = self.by_venue[venue.key]
            rooms = [
                r
                for r in here
                if r.type == "room"
                and (r.capacity or 0) >= attendees
                and set(course.needs) <= set(r.features)
            ]
            if not rooms:
                continue
            chosen = [self.rng.choice(rooms)]
            gear = [r for r in here if r.type == "equipment" and course.gear in r.features]
            if gear and self.rng.random() < 0.6:
                chosen.append(gear[0])
            return course, chosen, attendees
        return None

    def minutes_for(self, course: Course, resources: Sequence[ResourcePlan]) -> int | None:
        low = max(r.rules.min_minutes for r in resources)
        high = min(r.rules.max_minutes for r in resources)
        fitting = [m for m in course.minutes if low <= m <= high]
        return self.rng.choice(fitting) if fitting else None

    def starts(self, spans: Sequence[tuple[int, int]], minutes: int) -> list[int]:
        """Possible starts on the grid, in a random order that tries the usual hours first
        (a morning, afternoon or evening class), as people book."""
        found = [
            start
            for first, last in spans
            for start in range(
                -(-first // GRID_MINUTES) * GRID_MINUTES, last - minutes + 1, GRID_MINUTES
            )
        ]
        self.rng.shuffle(found)
        return sorted(found, key=lambda start: start not in USUAL_STARTS)

    def single(self, booker: Booker, key: str) -> BookingPlan | None:
        picked = self.choose(booker)
        if picked is None:
            return None
        course, resources, attendees = picked
        minutes = self.minutes_for(course, resources)
        if minutes is None:
            return None
        keys = [r.key for r in resources]
        for day in self.rng.sample(self.days, 12):
            options = self.starts(self.spans(resources, day), minutes)
            for start_minute in options:
                start = _at(day, start_minute)
                end = start + timedelta(minutes=minutes)
                if self.ledger.free(keys, start, end):
                    self.ledger.take(keys, start, end)
                    return self._plan(
                        key,
                        booker=booker,
                        course=course,
                        resources=resources,
                        attendees=attendees,
                        slots=[Slot(start, end)],
                    )
        return None

    def series(self, booker: Booker, key: str) -> BookingPlan | None:
        picked = self.choose(booker)
        if picked is None:
            return None
        course, resources, attendees = picked
        if any(r.requires_approval for r in resources):
            return None  # approvals are one by one; a series goes where none is needed
        minutes = self.minutes_for(course, resources)
        if minutes is None:
            return None
        weeks = self.rng.choice(SERIES_WEEKS)
        keys = [r.key for r in resources]
        for first in self.rng.sample(self.days[:14], 7):
            options = self.starts(self.spans(resources, first), minutes)
            for start_minute in options:
                slots = []
                for week in range(weeks):
                    day = first + timedelta(weeks=week)
                    start = _at(day, start_minute)
                    end = start + timedelta(minutes=minutes)
                    inside = any(
                        a <= start_minute and start_minute + minutes <= b
                        for a, b in self.spans(resources, day)
                    )
                    if not inside or not self.ledger.free(keys, start, end):
                        break
                    slots.append(Slot(start, end))
                else:
                    for slot in slots:
                        self.ledger.take(keys, slot.start, slot.end)
                    return self._plan(
                        key,
                        booker=booker,
                        course=course,
                        resources=resources,
                        attendees=attendees,
                        slots=slots,
                        rrule=f"FREQ=WEEKLY;COUNT={weeks}",
                    )
        return None

    def _plan(
        self,
        key: str,
        *,
        booker: Booker,
        course: Course,
        resources: Sequence[ResourcePlan],
        attendees: int,
        slots: Sequence[Slot],
        rrule: str | None = None,
    ) -> BookingPlan:
        plan = BookingPlan(
            key=key,
            org=booker.org,
            venue=resources[0].venue,
            resources=tuple(r.key for r in resources),
            start=slots[0].start,
            end=slots[0].end,
            purpose=f"{course.purpose}（每周）" if rrule else course.purpose,
            programme=course.programme,
            attendees=attendees,
            occurrences=tuple(slots),
            rrule=rrule,
        )
        self.made.append(plan)
        return plan


def _at(day: date, minute: int) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=ZONE)


def _book(
    catalogue: _Catalogue, today: date, rng: random.Random
) -> tuple[list[BookingPlan], VenuePlan]:
    """A season of bookings: weekly series first (they need the same slot week after week), then
    single bookings, then what becomes of some of them (approved, rejected, cancelled). With them
    the showcase school: of those with requests for approval, the one booked most."""
    planner = _Planner(catalogue, today, rng)
    series_bookers = [
        b
        for b in BOOKERS
        if b.org.startswith("cec-")
        or b.org
        in (
            "luhu-laonian-daxue",
            "luhu-youth-league",
            "luhu-open-university",
            "luhu-elderly-association",
            "luhu-womens-federation",
        )
    ]
    made = 0
    for attempt in range(SERIES * 20):
        if made == SERIES:
            break
        booker = series_bookers[attempt % len(series_bookers)]
        if planner.series(booker, f"series-{made + 1:02d}") is not None:
            made += 1
    number = 0
    for booker in BOOKERS:
        placed = 0
        for _ in range(booker.wanted * 4):
            if placed == booker.wanted:
                break
            if planner.single(booker, f"booking-{number + 1:03d}") is not None:
                placed += 1
                number += 1
    resources = {r.key: r for r in catalogue.resources}
    counts = Counter(plan.venue for plan in planner.made)
    asking = Counter(
        plan.venue
        for plan in planner.made
        if any(resources[key].requires_approval for key in plan.resources)
    )
    showcase = max(
        (venue for venue in catalogue.venues if venue.kind == "school"),
        key=lambda venue: (asking[venue.key] > 0, counts[venue.key], venue.key),
    )
    return _decide(planner.made, resources, rng, showcase.key), showcase


def _decide(
    plans: list[BookingPlan],
    resources: dict[str, ResourcePlan],
    rng: random.Random,
    showcase: str,
) -> list[BookingPlan]:
    """Most requests for approval are approved, one or two rejected, a few left pending; a few
    confirmed bookings are cancelled."""
    decided: list[BookingPlan] = []
    needing = [p for p in plans if any(resources[k].requires_approval for k in p.resources)]
    # The showcase school's requests first, so its manager finds some waiting.
    first = sorted(needing, key=lambda p: p.venue != showcase)
    pending = {p.key for p in first[: max(3, len(needing) // 5)]}
    rejected = {p.key for p in first[len(pending) : len(pending) + 2]}
    plain = [p for p in plans if p not in needing and p.rrule is None]
    cancelled = {p.key for p in rng.sample(plain, min(CANCELLED, len(plain)))}
    for plan in plans:
        if plan.key in cancelled:
            decided.append(replace(plan, then="cancel", reason=rng.choice(CANCEL_REASONS)))
        elif plan.key in rejected:
            decided.append(replace(plan, then="reject", reason=rng.choice(REJECT_REASONS)))
        elif plan in needing and plan.key not in pending:
            decided.append(replace(plan, then="approve"))
        else:
            decided.append(plan)
    return decided


# The lecturer corps and next month's requests

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余"
GIVEN = (
    "建国", "丽华", "志强", "秀英", "海燕", "文杰", "晓梅", "国平", "玉兰", "俊峰", "雪芳", "明辉",
    "春燕", "立新", "慧敏", "德华", "桂香", "振宇", "静怡", "永刚", "淑珍", "卫东", "红梅", "子轩",
    "思远", "佳琪", "宏伟", "素琴", "金凤",
    "伟民", "晓东", "雅琴", "丹", "磊", "敏", "军", "琳", "涛", "燕", "斌",
)  # fmt: skip
AVAILABILITY = (
    (_span(WEEKDAYS, "18:30", "21:00"),),
    (_span((6, 7), "09:00", "17:00"),),
    (_span((1, 3, 5), "08:30", "11:30"), _span((1, 3, 5), "14:00", "17:00")),
    (_span((2, 4), "18:30", "21:00"), _span((6,), "09:00", "12:00")),
    (_span(WEEKDAYS, "08:30", "16:30"),),
)
TOPIC_PROGRAMMES: dict[str, tuple[Programme, ...]] = {
    "健康养生": ("elderly", "citizen"),
    "法律普及": ("citizen",),
    "家庭教育": ("citizen", "youth"),
    "数字技能": ("elderly", "workforce"),
    "老年照护": ("elderly", "assistance"),
    "非遗文化": ("citizen", "youth"),
    "心理健康": ("citizen", "youth"),
    "防范电信诈骗": ("elderly", "citizen"),
    "垃圾分类与环保": ("citizen",),
    "书法艺术": ("elderly", "youth"),
    "安全急救": ("citizen",),
}
AUDIENCES: dict[Programme, str] = {
    "elderly": "社区老年人",
    "citizen": "社区居民",
    "youth": "中小学生及家长",
    "workforce": "求职及在职人员",
    "assistance": "困难家庭及残疾人",
    "degree": "开放大学学员",
}
LECTURERS = 40
REQUESTS = 24


def _lecturers(today: date, rng: random.Random) -> list[LecturerPlan]:
    surnames, given = list(SURNAMES), list(GIVEN)
    rng.shuffle(surnames)
    rng.shuffle(given)
    names = [s + g for s, g in zip(surnames, given, strict=False)][:LECTURERS]
    month = next_month(today)
    found = []
    for index, name in enumerate(names):
        core = CORE_TOPICS[index % len(CORE_TOPICS)]
        extra = rng.sample([t for t in TOPICS if t != core], rng.choice((0, 1, 1, 2)))
        town, _, _, lat, lon, *_ = TOWNS[index % len(TOWNS)]
        blackout = tuple(
            sorted(month + timedelta(days=d) for d in rng.sample(range(28), rng.choice((0, 1, 2))))
        )
        found.append(
            LecturerPlan(
                key=f"lecturer-{index + 1:02d}",
                name=name,
                topics=(core, *extra),
                languages=("zh", "wuu") if index % 3 == 0 else ("zh",),
                area=town,
                location=Location(
                    round(lat + rng.uniform(-0.02, 0.02), 5),
                    round(lon + rng.uniform(-0.02, 0.02), 5),
                ),
                max_per_month=rng.choice((2, 3, 4, 4, 6)),
                availability=rng.choice(AVAILABILITY),
                blackout_dates=blackout,
                email=f"lecturer{index + 1:02d}@luhu-edu.example.org",
                phone=f"0574-8800{index + 1:04d}",
            )
        )
    return found


def _requests(
    today: date, venues: Sequence[VenuePlan], lecturers: Sequence[LecturerPlan], rng: random.Random
) -> list[LectureRequestPlan]:
    """Citizen schools, centres and the elderly university ask for lectures next month, on topics
    the corps covers, at times they are open."""
    month = next_month(today).strftime("%Y-%m")
    covered = sorted({topic for lecturer in lecturers for topic in lecturer.topics})
    askers = [v for v in venues if v.kind in ("citizen_school", "community_education_centre")]
    askers += [v for v in venues if v.kind == "elderly_university"]
    preferred: dict[str, tuple[SpanDoc, ...]] = {
        "citizen_school": (_span(WEEKDAYS, "19:00", "21:00"), _span((6,), "09:00", "11:30")),
        "community_education_centre": (
            _span(WEEKDAYS, "14:00", "16:00"),
            _span(WEEKDAYS, "19:00", "21:00"),
        ),
        "elderly_university": (_span(WEEKDAYS, "09:00", "11:30"),),
    }
    found = []
    for index, venue in enumerate(rng.sample(askers, REQUESTS)):
        topic = CORE_TOPICS[index % len(CORE_TOPICS)] if index < 18 else rng.choice(covered)
        programme: Programme = (
            "elderly" if venue.kind == "elderly_university" else rng.choice(TOPIC_PROGRAMMES[topic])
        )
        found.append(
            LectureRequestPlan(
                key=f"request-{index + 1:02d}",
                venue=venue.key,
                topic=topic,
                programme=programme,
                month=month,
                sessions=rng.choice((1, 1, 2, 3)),
                minutes=90,
                audience=AUDIENCES[programme],
                preferred=preferred[venue.kind],
            )
        )
    return found


def build_city(today: date, seed: int = DEFAULT_SEED) -> City:
    """The whole demo city for a load on `today` (the venues' local date): the same for the same
    arguments."""
    rng = random.Random(seed)  # noqa: S311 - demo data wants repeatable draws, not secrecy
    catalogue = _lay_out(today, rng)
    bookings, showcase = _book(catalogue, today, rng)
    lecturers = _lecturers(today, rng)
    return City(
        name=CITY_NAME,
        seed=seed,
        today=today,
        office_org=OFFICE_ORG,
        orgs=tuple(
            Org(org_id, name)
            for org_id, name in {**catalogue.orgs, **{b.org: b.name for b in BOOKERS}}.items()
        ),
        areas=tuple(catalogue.areas),
        venues=tuple(catalogue.venues),
        resources=tuple(catalogue.resources),
        bookings=tuple(bookings),
        lecturers=tuple(lecturers),
        requests=tuple(_requests(today, catalogue.venues, lecturers, rng)),
        showcase_venue_org=showcase.owner_org,
        showcase_community_org=SHOWCASE_CENTRE,
    )
