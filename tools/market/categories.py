"""The product categories a world's advertisers sell in: their products and price ranges, attributes, rival
brands, seasonality and margins; the held-out categories no world draws unless its config names them. Apart
from world.py so that the config (data_model.py) can check category names without importing the generator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategorySpec:
    name: str
    products: tuple[tuple[str, float, float], ...]  # (noun, min price, max price)
    attributes: tuple[str, ...]
    rival_brands: tuple[str, ...]
    peak_day_of_year: int  # where yearly demand peaks
    yearly_amp: float
    margin: tuple[float, float]


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "kitchen",
        (
            ("chef knife", 24, 95),
            ("cutting board", 14, 45),
            ("cast iron skillet", 19, 69),
            ("coffee grinder", 22, 119),
            ("french press", 17, 45),
            ("knife sharpener", 11, 39),
            ("mixing bowls", 18, 49),
            ("spice rack", 15, 42),
            ("garlic press", 9, 25),
        ),
        (
            "stainless steel",
            "bamboo",
            "non stick",
            "ceramic",
            "large",
            "professional",
            "set of 3",
            "japanese",
        ),
        ("Cuisinell", "Henckor", "KitchPro", "Zwillo", "OxoLine"),
        345,
        0.25,
        (0.30, 0.55),
    ),
    CategorySpec(
        "outdoor",
        (
            ("camping tent", 49, 249),
            ("sleeping bag", 29, 129),
            ("hiking backpack", 35, 159),
            ("camping chair", 19, 79),
            ("headlamp", 12, 39),
            ("water filter", 19, 59),
            ("cooler", 29, 199),
            ("hammock", 19, 69),
        ),
        (
            "waterproof",
            "lightweight",
            "ultralight",
            "4 person",
            "insulated",
            "portable",
            "compact",
            "rechargeable",
        ),
        ("TrailMax", "Coleridge", "NorthPeak", "Kelty&Co", "CampCore"),
        170,
        0.45,
        (0.25, 0.50),
    ),
    CategorySpec(
        "pet",
        (
            ("dog bed", 25, 99),
            ("cat litter box", 19, 89),
            ("dog leash", 9, 29),
            ("cat tree", 39, 149),
            ("dog harness", 14, 39),
            ("pet fountain", 19, 49),
            ("chew toys", 8, 24),
            ("dog crate", 39, 129),
        ),
        ("orthopedic", "large", "small", "washable", "no pull", "self cleaning", "durable", "calming"),
        ("PawPal", "Petlux", "Furrific", "BarkBox&Co", "Kitteo"),
        330,
        0.08,
        (0.35, 0.60),
    ),
    CategorySpec(
        "beauty",
        (
            ("vitamin c serum", 12, 39),
            ("hair dryer", 29, 129),
            ("face moisturizer", 14, 49),
            ("makeup brushes", 11, 35),
            ("hair straightener", 25, 99),
            ("sunscreen", 9, 29),
            ("lip balm", 5, 15),
            ("nail polish set", 10, 30),
        ),
        (
            "organic",
            "vegan",
            "travel size",
            "for sensitive skin",
            "ionic",
            "spf 50",
            "hydrating",
            "cruelty free",
        ),
        ("Lumira", "Glowbar", "Cerava", "Oleo", "PureDerm"),
        130,
        0.15,
        (0.50, 0.75),
    ),
    CategorySpec(
        "electronics",
        (
            ("wireless earbuds", 19, 149),
            ("phone charger", 9, 35),
            ("bluetooth speaker", 19, 129),
            ("usb c cable", 6, 19),
            ("power bank", 15, 59),
            ("webcam", 25, 99),
            ("smart plug", 9, 29),
            ("wireless mouse", 10, 49),
        ),
        (
            "fast charging",
            "noise cancelling",
            "waterproof",
            "portable",
            "4k",
            "60w",
            "long battery",
            "compact",
        ),
        ("Sonix", "Ankor", "Voltra", "Beatline", "Logitek"),
        330,
        0.30,
        (0.15, 0.35),
    ),
    CategorySpec(
        "toys",
        (
            ("building blocks", 15, 79),
            ("board game", 14, 45),
            ("puzzle", 9, 29),
            ("rc car", 25, 89),
            ("plush toy", 9, 29),
            ("craft kit", 12, 35),
            ("stem kit", 19, 59),
            ("doll house", 39, 129),
        ),
        (
            "for kids",
            "1000 piece",
            "educational",
            "for toddlers",
            "family",
            "wooden",
            "for girls",
            "for boys",
        ),
        ("Legoland", "Hasbrook", "PlayNest", "Melissa&Co", "FunForge"),
        350,
        0.50,
        (0.35, 0.55),
    ),
    CategorySpec(
        "home",
        (
            ("throw pillow", 12, 39),
            ("blackout curtains", 19, 59),
            ("bath towels", 19, 59),
            ("storage bins", 15, 45),
            ("led desk lamp", 19, 59),
            ("duvet cover", 25, 89),
            ("area rug", 39, 199),
            ("shower curtain", 12, 35),
        ),
        ("cotton", "set of 2", "modern", "boho", "queen size", "washable", "grey", "linen"),
        ("Homely", "NestLane", "Casaro", "Umbrio", "Linenry"),
        300,
        0.15,
        (0.40, 0.65),
    ),
    CategorySpec(
        "fitness",
        (
            ("yoga mat", 15, 69),
            ("dumbbells", 25, 149),
            ("resistance bands", 9, 35),
            ("foam roller", 12, 39),
            ("jump rope", 7, 25),
            ("kettlebell", 19, 79),
            ("protein shaker", 7, 19),
            ("pull up bar", 19, 49),
        ),
        ("adjustable", "non slip", "extra thick", "set", "for women", "for men", "heavy", "home gym"),
        ("FlexFit", "Gaiamo", "IronGrip", "Bowflexa", "CoreMotion"),
        8,
        0.35,
        (0.35, 0.60),
    ),
    CategorySpec(
        "office",
        (
            ("desk organizer", 12, 39),
            ("ergonomic chair", 89, 299),
            ("standing desk", 149, 399),
            ("gel pens", 6, 19),
            ("notebook", 7, 24),
            ("monitor stand", 19, 59),
            ("label maker", 19, 49),
            ("backpack for school", 19, 59),
        ),
        ("ergonomic", "adjustable", "a5", "pack of 12", "wooden", "mesh", "dotted", "for laptop"),
        ("Staplo", "Deskly", "Fellowe", "ModuWork", "Paperly"),
        225,
        0.35,
        (0.30, 0.55),
    ),
    CategorySpec(
        "baby",
        (
            ("baby monitor", 39, 179),
            ("diaper bag", 25, 79),
            ("baby bottles", 14, 39),
            ("swaddle blankets", 15, 45),
            ("high chair", 49, 199),
            ("teething toys", 7, 19),
            ("baby carrier", 29, 129),
            ("bottle warmer", 19, 59),
        ),
        ("organic", "anti colic", "newborn", "portable", "bpa free", "muslin", "video", "convertible"),
        ("Babyly", "Graco&Co", "Tommee", "Munchkinz", "Kindora"),
        200,
        0.05,
        (0.35, 0.55),
    ),
)
# Categories that no world draws from unless its config names them (`WorldConfig.categories`): the
# marketplace's held-out categories. Training worlds never contain them, so the evaluation's `new_category`
# split (evals/world.py), a world of only these, is a market the model has not seen. Both read this one
# constant; adding a category here changes no existing world (the default draw is over `CATEGORIES`).
HELD_OUT_CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(
        "garden",
        (
            ("lawn mower", 149, 549),
            ("leaf blower", 59, 229),
            ("pressure washer", 99, 349),
            ("hedge trimmer", 49, 179),
            ("raised garden bed", 39, 149),
            ("compost bin", 29, 99),
            ("garden hose", 19, 69),
            ("pruning shears", 12, 39),
        ),
        (
            "cordless",
            "heavy duty",
            "electric",
            "battery powered",
            "rust proof",
            "galvanized",
            "commercial grade",
            "for small yards",
        ),
        ("Husqvarda", "GreenWorx", "Fiskara", "SunJoey", "Toroh"),
        120,
        0.55,
        (0.25, 0.45),
    ),
)
HELD_OUT_CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in HELD_OUT_CATEGORIES)
CATEGORY_BY_NAME = {c.name: c for c in (*CATEGORIES, *HELD_OUT_CATEGORIES)}


def category_pool(names: list[str] | tuple[str, ...] | None) -> tuple[CategorySpec, ...]:
    """The categories a world's advertisers are drawn from: `CATEGORIES` for None, else the named ones in
    `CATEGORY_BY_NAME` order (so the same set always gives the same world). ValueError names the valid ones."""
    if names is None:
        return CATEGORIES
    if not names:
        raise ValueError(f"categories must name at least one category (valid: {', '.join(CATEGORY_BY_NAME)})")
    unknown = [n for n in names if n not in CATEGORY_BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(CATEGORY_BY_NAME)}"
        )
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ValueError(f"categories names {', '.join(map(repr, duplicates))} more than once")
    return tuple(c for c in CATEGORY_BY_NAME.values() if c.name in names)
