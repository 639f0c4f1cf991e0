"""Real US metro areas used as warehouse sites by the demo, the load generator and tests."""
from __future__ import annotations

METROS: list[tuple[str, str, str]] = [  # id, name, ZIP (the first 10 are the demo's network)
    ("NJ1", "Edison NJ", "08817"),
    ("ATL", "Atlanta GA", "30303"),
    ("CHI", "Chicago IL", "60601"),
    ("DAL", "Dallas TX", "75201"),
    ("DEN", "Denver CO", "80202"),
    ("PHX", "Phoenix AZ", "85004"),
    ("LAX", "Los Angeles CA", "90012"),
    ("SEA", "Seattle WA", "98101"),
    ("MEM", "Memphis TN", "38103"),
    ("DSM", "Des Moines IA", "50309"),
    ("HOU", "Houston TX", "77002"),
    ("PHL", "Philadelphia PA", "19103"),
    ("MIA", "Miami FL", "33131"),
    ("BOS", "Boston MA", "02108"),
    ("MSP", "Minneapolis MN", "55401"),
    ("MKC", "Kansas City MO", "64106"),
    ("SLC", "Salt Lake City UT", "84101"),
    ("CMH", "Columbus OH", "43215"),
    ("PDX", "Portland OR", "97204"),
    ("SAN", "San Diego CA", "92101"),
]
