"""Country names: one canonical name per country (WVS-7 naming), aliases, ISO 3166-1 codes, Pew sample flags.

Canonical names follow the WVS files ("Great Britain", "Taiwan ROC", "Hong Kong SAR", "Macao SAR",
"South Korea", "Czechia", "Russia", "Turkey"); other countries use their ISO 3166-1 short name in plain
form ("Bolivia", "Côte d'Ivoire", "Palestine"). Every alias the data uses ("Britain", "Czech Rep.",
"S. Korea", "Palest. ter.", ...) maps to one canonical name here and nowhere else.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

from survey_sim.errors import ConfigError, SurveyDataError

# (ISO 3166-1 numeric, alpha-2, alpha-3, canonical name)
_ISO_TABLE: tuple[tuple[int, str, str, str], ...] = (
    (4, 'AF', 'AFG', 'Afghanistan'), (8, 'AL', 'ALB', 'Albania'), (10, 'AQ', 'ATA', 'Antarctica'),
    (12, 'DZ', 'DZA', 'Algeria'), (16, 'AS', 'ASM', 'American Samoa'), (20, 'AD', 'AND', 'Andorra'),
    (24, 'AO', 'AGO', 'Angola'), (28, 'AG', 'ATG', 'Antigua and Barbuda'), (31, 'AZ', 'AZE', 'Azerbaijan'),
    (32, 'AR', 'ARG', 'Argentina'), (36, 'AU', 'AUS', 'Australia'), (40, 'AT', 'AUT', 'Austria'),
    (44, 'BS', 'BHS', 'Bahamas'), (48, 'BH', 'BHR', 'Bahrain'), (50, 'BD', 'BGD', 'Bangladesh'),
    (51, 'AM', 'ARM', 'Armenia'), (52, 'BB', 'BRB', 'Barbados'), (56, 'BE', 'BEL', 'Belgium'),
    (60, 'BM', 'BMU', 'Bermuda'), (64, 'BT', 'BTN', 'Bhutan'), (68, 'BO', 'BOL', 'Bolivia'),
    (70, 'BA', 'BIH', 'Bosnia and Herzegovina'), (72, 'BW', 'BWA', 'Botswana'),
    (74, 'BV', 'BVT', 'Bouvet Island'), (76, 'BR', 'BRA', 'Brazil'), (84, 'BZ', 'BLZ', 'Belize'),
    (86, 'IO', 'IOT', 'British Indian Ocean Territory'), (90, 'SB', 'SLB', 'Solomon Islands'),
    (92, 'VG', 'VGB', 'British Virgin Islands'), (96, 'BN', 'BRN', 'Brunei'),
    (100, 'BG', 'BGR', 'Bulgaria'), (104, 'MM', 'MMR', 'Myanmar'), (108, 'BI', 'BDI', 'Burundi'),
    (112, 'BY', 'BLR', 'Belarus'), (116, 'KH', 'KHM', 'Cambodia'), (120, 'CM', 'CMR', 'Cameroon'),
    (124, 'CA', 'CAN', 'Canada'), (132, 'CV', 'CPV', 'Cabo Verde'), (136, 'KY', 'CYM', 'Cayman Islands'),
    (140, 'CF', 'CAF', 'Central African Republic'), (144, 'LK', 'LKA', 'Sri Lanka'),
    (148, 'TD', 'TCD', 'Chad'), (152, 'CL', 'CHL', 'Chile'), (156, 'CN', 'CHN', 'China'),
    (158, 'TW', 'TWN', 'Taiwan ROC'), (162, 'CX', 'CXR', 'Christmas Island'),
    (166, 'CC', 'CCK', 'Cocos Islands'), (170, 'CO', 'COL', 'Colombia'), (174, 'KM', 'COM', 'Comoros'),
    (175, 'YT', 'MYT', 'Mayotte'), (178, 'CG', 'COG', 'Congo'),
    (180, 'CD', 'COD', 'Democratic Republic of the Congo'), (184, 'CK', 'COK', 'Cook Islands'),
    (188, 'CR', 'CRI', 'Costa Rica'), (191, 'HR', 'HRV', 'Croatia'), (192, 'CU', 'CUB', 'Cuba'),
    (196, 'CY', 'CYP', 'Cyprus'), (203, 'CZ', 'CZE', 'Czechia'), (204, 'BJ', 'BEN', 'Benin'),
    (208, 'DK', 'DNK', 'Denmark'), (212, 'DM', 'DMA', 'Dominica'), (214, 'DO', 'DOM', 'Dominican Republic'),
    (218, 'EC', 'ECU', 'Ecuador'), (222, 'SV', 'SLV', 'El Salvador'),
    (226, 'GQ', 'GNQ', 'Equatorial Guinea'), (231, 'ET', 'ETH', 'Ethiopia'), (232, 'ER', 'ERI', 'Eritrea'),
    (233, 'EE', 'EST', 'Estonia'), (234, 'FO', 'FRO', 'Faroe Islands'),
    (238, 'FK', 'FLK', 'Falkland Islands'),
    (239, 'GS', 'SGS', 'South Georgia and the South Sandwich Islands'), (242, 'FJ', 'FJI', 'Fiji'),
    (246, 'FI', 'FIN', 'Finland'), (248, 'AX', 'ALA', 'Åland Islands'), (250, 'FR', 'FRA', 'France'),
    (254, 'GF', 'GUF', 'French Guiana'), (258, 'PF', 'PYF', 'French Polynesia'),
    (260, 'TF', 'ATF', 'French Southern Territories'), (262, 'DJ', 'DJI', 'Djibouti'),
    (266, 'GA', 'GAB', 'Gabon'), (268, 'GE', 'GEO', 'Georgia'), (270, 'GM', 'GMB', 'Gambia'),
    (275, 'PS', 'PSE', 'Palestine'), (276, 'DE', 'DEU', 'Germany'), (288, 'GH', 'GHA', 'Ghana'),
    (292, 'GI', 'GIB', 'Gibraltar'), (296, 'KI', 'KIR', 'Kiribati'), (300, 'GR', 'GRC', 'Greece'),
    (304, 'GL', 'GRL', 'Greenland'), (308, 'GD', 'GRD', 'Grenada'), (312, 'GP', 'GLP', 'Guadeloupe'),
    (316, 'GU', 'GUM', 'Guam'), (320, 'GT', 'GTM', 'Guatemala'), (324, 'GN', 'GIN', 'Guinea'),
    (328, 'GY', 'GUY', 'Guyana'), (332, 'HT', 'HTI', 'Haiti'),
    (334, 'HM', 'HMD', 'Heard Island and McDonald Islands'), (336, 'VA', 'VAT', 'Vatican City'),
    (340, 'HN', 'HND', 'Honduras'), (344, 'HK', 'HKG', 'Hong Kong SAR'), (348, 'HU', 'HUN', 'Hungary'),
    (352, 'IS', 'ISL', 'Iceland'), (356, 'IN', 'IND', 'India'), (360, 'ID', 'IDN', 'Indonesia'),
    (364, 'IR', 'IRN', 'Iran'), (368, 'IQ', 'IRQ', 'Iraq'), (372, 'IE', 'IRL', 'Ireland'),
    (376, 'IL', 'ISR', 'Israel'), (380, 'IT', 'ITA', 'Italy'), (384, 'CI', 'CIV', "Côte d'Ivoire"),
    (388, 'JM', 'JAM', 'Jamaica'), (392, 'JP', 'JPN', 'Japan'), (398, 'KZ', 'KAZ', 'Kazakhstan'),
    (400, 'JO', 'JOR', 'Jordan'), (404, 'KE', 'KEN', 'Kenya'), (408, 'KP', 'PRK', 'North Korea'),
    (410, 'KR', 'KOR', 'South Korea'), (414, 'KW', 'KWT', 'Kuwait'), (417, 'KG', 'KGZ', 'Kyrgyzstan'),
    (418, 'LA', 'LAO', 'Laos'), (422, 'LB', 'LBN', 'Lebanon'), (426, 'LS', 'LSO', 'Lesotho'),
    (428, 'LV', 'LVA', 'Latvia'), (430, 'LR', 'LBR', 'Liberia'), (434, 'LY', 'LBY', 'Libya'),
    (438, 'LI', 'LIE', 'Liechtenstein'), (440, 'LT', 'LTU', 'Lithuania'), (442, 'LU', 'LUX', 'Luxembourg'),
    (446, 'MO', 'MAC', 'Macao SAR'), (450, 'MG', 'MDG', 'Madagascar'), (454, 'MW', 'MWI', 'Malawi'),
    (458, 'MY', 'MYS', 'Malaysia'), (462, 'MV', 'MDV', 'Maldives'), (466, 'ML', 'MLI', 'Mali'),
    (470, 'MT', 'MLT', 'Malta'), (474, 'MQ', 'MTQ', 'Martinique'), (478, 'MR', 'MRT', 'Mauritania'),
    (480, 'MU', 'MUS', 'Mauritius'), (484, 'MX', 'MEX', 'Mexico'), (492, 'MC', 'MCO', 'Monaco'),
    (496, 'MN', 'MNG', 'Mongolia'), (498, 'MD', 'MDA', 'Moldova'), (499, 'ME', 'MNE', 'Montenegro'),
    (500, 'MS', 'MSR', 'Montserrat'), (504, 'MA', 'MAR', 'Morocco'), (508, 'MZ', 'MOZ', 'Mozambique'),
    (512, 'OM', 'OMN', 'Oman'), (516, 'NA', 'NAM', 'Namibia'), (520, 'NR', 'NRU', 'Nauru'),
    (524, 'NP', 'NPL', 'Nepal'), (528, 'NL', 'NLD', 'Netherlands'), (531, 'CW', 'CUW', 'Curaçao'),
    (533, 'AW', 'ABW', 'Aruba'), (534, 'SX', 'SXM', 'Sint Maarten'),
    (535, 'BQ', 'BES', 'Bonaire, Sint Eustatius and Saba'), (540, 'NC', 'NCL', 'New Caledonia'),
    (548, 'VU', 'VUT', 'Vanuatu'), (554, 'NZ', 'NZL', 'New Zealand'), (558, 'NI', 'NIC', 'Nicaragua'),
    (562, 'NE', 'NER', 'Niger'), (566, 'NG', 'NGA', 'Nigeria'), (570, 'NU', 'NIU', 'Niue'),
    (574, 'NF', 'NFK', 'Norfolk Island'), (578, 'NO', 'NOR', 'Norway'),
    (580, 'MP', 'MNP', 'Northern Mariana Islands'),
    (581, 'UM', 'UMI', 'United States Minor Outlying Islands'), (583, 'FM', 'FSM', 'Micronesia'),
    (584, 'MH', 'MHL', 'Marshall Islands'), (585, 'PW', 'PLW', 'Palau'), (586, 'PK', 'PAK', 'Pakistan'),
    (591, 'PA', 'PAN', 'Panama'), (598, 'PG', 'PNG', 'Papua New Guinea'), (600, 'PY', 'PRY', 'Paraguay'),
    (604, 'PE', 'PER', 'Peru'), (608, 'PH', 'PHL', 'Philippines'), (612, 'PN', 'PCN', 'Pitcairn'),
    (616, 'PL', 'POL', 'Poland'), (620, 'PT', 'PRT', 'Portugal'), (624, 'GW', 'GNB', 'Guinea-Bissau'),
    (626, 'TL', 'TLS', 'Timor-Leste'), (630, 'PR', 'PRI', 'Puerto Rico'), (634, 'QA', 'QAT', 'Qatar'),
    (638, 'RE', 'REU', 'Réunion'), (642, 'RO', 'ROU', 'Romania'), (643, 'RU', 'RUS', 'Russia'),
    (646, 'RW', 'RWA', 'Rwanda'), (652, 'BL', 'BLM', 'Saint Barthélemy'),
    (654, 'SH', 'SHN', 'Saint Helena'), (659, 'KN', 'KNA', 'Saint Kitts and Nevis'),
    (660, 'AI', 'AIA', 'Anguilla'), (662, 'LC', 'LCA', 'Saint Lucia'), (663, 'MF', 'MAF', 'Saint Martin'),
    (666, 'PM', 'SPM', 'Saint Pierre and Miquelon'), (670, 'VC', 'VCT', 'Saint Vincent and the Grenadines'),
    (674, 'SM', 'SMR', 'San Marino'), (678, 'ST', 'STP', 'Sao Tome and Principe'),
    (682, 'SA', 'SAU', 'Saudi Arabia'), (686, 'SN', 'SEN', 'Senegal'), (688, 'RS', 'SRB', 'Serbia'),
    (690, 'SC', 'SYC', 'Seychelles'), (694, 'SL', 'SLE', 'Sierra Leone'), (702, 'SG', 'SGP', 'Singapore'),
    (703, 'SK', 'SVK', 'Slovakia'), (704, 'VN', 'VNM', 'Vietnam'), (705, 'SI', 'SVN', 'Slovenia'),
    (706, 'SO', 'SOM', 'Somalia'), (710, 'ZA', 'ZAF', 'South Africa'), (716, 'ZW', 'ZWE', 'Zimbabwe'),
    (724, 'ES', 'ESP', 'Spain'), (728, 'SS', 'SSD', 'South Sudan'), (729, 'SD', 'SDN', 'Sudan'),
    (732, 'EH', 'ESH', 'Western Sahara'), (740, 'SR', 'SUR', 'Suriname'),
    (744, 'SJ', 'SJM', 'Svalbard and Jan Mayen'), (748, 'SZ', 'SWZ', 'Eswatini'),
    (752, 'SE', 'SWE', 'Sweden'), (756, 'CH', 'CHE', 'Switzerland'), (760, 'SY', 'SYR', 'Syria'),
    (762, 'TJ', 'TJK', 'Tajikistan'), (764, 'TH', 'THA', 'Thailand'), (768, 'TG', 'TGO', 'Togo'),
    (772, 'TK', 'TKL', 'Tokelau'), (776, 'TO', 'TON', 'Tonga'), (780, 'TT', 'TTO', 'Trinidad and Tobago'),
    (784, 'AE', 'ARE', 'United Arab Emirates'), (788, 'TN', 'TUN', 'Tunisia'), (792, 'TR', 'TUR', 'Turkey'),
    (795, 'TM', 'TKM', 'Turkmenistan'), (796, 'TC', 'TCA', 'Turks and Caicos Islands'),
    (798, 'TV', 'TUV', 'Tuvalu'), (800, 'UG', 'UGA', 'Uganda'), (804, 'UA', 'UKR', 'Ukraine'),
    (807, 'MK', 'MKD', 'North Macedonia'), (818, 'EG', 'EGY', 'Egypt'), (826, 'GB', 'GBR', 'Great Britain'),
    (831, 'GG', 'GGY', 'Guernsey'), (832, 'JE', 'JEY', 'Jersey'), (833, 'IM', 'IMN', 'Isle of Man'),
    (834, 'TZ', 'TZA', 'Tanzania'), (840, 'US', 'USA', 'United States'),
    (850, 'VI', 'VIR', 'US Virgin Islands'), (854, 'BF', 'BFA', 'Burkina Faso'),
    (858, 'UY', 'URY', 'Uruguay'), (860, 'UZ', 'UZB', 'Uzbekistan'), (862, 'VE', 'VEN', 'Venezuela'),
    (876, 'WF', 'WLF', 'Wallis and Futuna'), (882, 'WS', 'WSM', 'Samoa'), (887, 'YE', 'YEM', 'Yemen'),
    (894, 'ZM', 'ZMB', 'Zambia'),
)

# Codes outside ISO 3166-1 that WVS-7 uses for B_COUNTRY.
_WVS_EXTRA_NUMERIC = {909: "Northern Ireland"}

ISO_NUMERIC: dict[int, str] = {num: name for num, _, _, name in _ISO_TABLE} | _WVS_EXTRA_NUMERIC
ISO_ALPHA2: dict[str, str] = {a2: name for _, a2, _, name in _ISO_TABLE}
ISO_ALPHA3: dict[str, str] = {a3: name for _, _, a3, name in _ISO_TABLE}
COUNTRY_NAMES: frozenset[str] = frozenset(ISO_NUMERIC.values())

# Alias -> canonical name: ISO long forms, then the labels of the WVS and Pew files, then common variants.
ALIASES: dict[str, str] = {
    'Bolivia, Plurinational State of': 'Bolivia',
    'Virgin Islands, British': 'British Virgin Islands',
    'Brunei Darussalam': 'Brunei',
    'Taiwan, Province of China': 'Taiwan ROC',
    'Taiwan': 'Taiwan ROC',
    'Cocos (Keeling) Islands': 'Cocos Islands',
    'Congo, The Democratic Republic of the': 'Democratic Republic of the Congo',
    'Falkland Islands (Malvinas)': 'Falkland Islands',
    'Palestine, State of': 'Palestine',
    'Holy See (Vatican City State)': 'Vatican City',
    'Hong Kong': 'Hong Kong SAR',
    'Iran, Islamic Republic of': 'Iran',
    "Korea, Democratic People's Republic of": 'North Korea',
    'Korea, Republic of': 'South Korea',
    "Lao People's Democratic Republic": 'Laos',
    'Macao': 'Macao SAR',
    'Moldova, Republic of': 'Moldova',
    'Sint Maarten (Dutch part)': 'Sint Maarten',
    'Micronesia, Federated States of': 'Micronesia',
    'Russian Federation': 'Russia',
    'Saint Helena, Ascension and Tristan da Cunha': 'Saint Helena',
    'Saint Martin (French part)': 'Saint Martin',
    'Viet Nam': 'Vietnam',
    'Syrian Arab Republic': 'Syria',
    'Türkiye': 'Turkey',
    'United Kingdom': 'Great Britain',
    'Tanzania, United Republic of': 'Tanzania',
    'Virgin Islands, U.S.': 'US Virgin Islands',
    'Venezuela, Bolivarian Republic of': 'Venezuela',
    # labels of the Pew (GlobalOpinionQA) file
    "Britain": "Great Britain",
    "Czech Rep.": "Czechia",
    "S. Korea": "South Korea",
    "S. Africa": "South Africa",
    "Macau SAR": "Macao SAR",
    "Palest. ter.": "Palestine",
    "Bosnia Herzegovina": "Bosnia and Herzegovina",
    "Ivory Coast": "Côte d'Ivoire",
    # common variants
    "UK": "Great Britain",
    "U.K.": "Great Britain",
    "Czech Republic": "Czechia",
    "Republic of Korea": "South Korea",
    "Chinese Taipei": "Taiwan ROC",
    "Macau": "Macao SAR",
    "Palestinian territories": "Palestine",
    "Palestinian ter.": "Palestine",
    "Bosnia": "Bosnia and Herzegovina",
    "Bosnia and Herz.": "Bosnia and Herzegovina",
    "USA": "United States",
    "US": "United States",
    "U.S.": "United States",
    "United States of America": "United States",
    "Macedonia": "North Macedonia",
    "Burma": "Myanmar",
    "Kyrgyz Republic": "Kyrgyzstan",
    "Slovak Republic": "Slovakia",
    "The Netherlands": "Netherlands",
    "Holland": "Netherlands",
    "Swaziland": "Eswatini",
    "Cape Verde": "Cabo Verde",
    "East Timor": "Timor-Leste",
    "DR Congo": "Democratic Republic of the Congo",
    "Democratic Republic of Congo": "Democratic Republic of the Congo",
    "Republic of the Congo": "Congo",
    "UAE": "United Arab Emirates",
}

# Pew label suffixes kept as item flags: "India (Old national sample)" -> ("India", ("old_national_sample",)).
SAMPLE_FLAGS: dict[str, str] = {
    "non-national sample": "non_national_sample",
    "current national sample": "current_national_sample",
    "old national sample": "old_national_sample",
}


def _key(name: str) -> str:
    """Lookup key: accents removed, case folded, curly quotes straightened, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", str(name)).replace("\u2019", "'").replace("\u2018", "'")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.casefold().split())


_LOOKUP: dict[str, str] = {_key(n): n for n in COUNTRY_NAMES} | {_key(a): n for a, n in ALIASES.items()}
_SUFFIX = re.compile(r"^(?P<base>.*?)\s*\((?P<suffix>[^()]*)\)\s*$", re.DOTALL)


def _close(name: str, candidates: Iterable[str]) -> str:
    pool = sorted(set(candidates))
    by_key = {_key(c): c for c in pool}
    hits = difflib.get_close_matches(_key(name), list(by_key), n=5, cutoff=0.6)
    return f"; close matches: {', '.join(by_key[h] for h in hits)}" if hits else ""


def canonical_country(name: str) -> str:
    """The canonical name of a country name or alias; SurveyDataError (with close matches) if unknown."""
    if not isinstance(name, str) or not name.strip():
        raise SurveyDataError(f"country name must be a non-empty string, got {name!r}")
    found = _LOOKUP.get(_key(name))
    if found is None:
        raise SurveyDataError(f"unknown country {name!r}{_close(name, list(COUNTRY_NAMES) + list(ALIASES))}")
    return found


def parse_country_label(label: str) -> tuple[str, tuple[str, ...]]:
    """Canonical name and flags of a data label, e.g. "Nigeria (Non-national sample)" -> ("Nigeria", ("non_national_sample",))."""
    if isinstance(label, str) and _key(label) in _LOOKUP:
        return _LOOKUP[_key(label)], ()
    match = _SUFFIX.match(label) if isinstance(label, str) else None
    if match and match["base"].strip():
        suffix = _key(match["suffix"])
        flag = SAMPLE_FLAGS.get(suffix)
        if flag is None and suffix.endswith("sample"):
            flag = re.sub(r"[^a-z0-9]+", "_", suffix).strip("_")
        if flag:
            return canonical_country(match["base"]), (flag,)
    return canonical_country(label), ()


def resolve_country(name_or_code: str | int, known: Iterable[str] | None = None) -> str:
    """Canonical name of a country given by name, alias, ISO numeric, alpha-2 or alpha-3 code.

    With `known` (the groups present in the data) the result must be one of them; a known group that
    is no country (a demo survey's invented group) matches by its exact name. Raises ConfigError
    naming close matches when the country is unknown or not in `known`.
    """
    known_set = None if known is None else {_canonical_or(k, k) for k in known}
    text = str(name_or_code).strip()
    if isinstance(name_or_code, bool) or not text:
        raise ConfigError(f"country must be a name or an ISO code, got {name_or_code!r}")
    if known_set is not None and text in known_set:
        return text
    if text.isdigit():
        name = ISO_NUMERIC.get(int(text))
    elif _key(text) in _LOOKUP:
        name = _LOOKUP[_key(text)]
    elif len(text) in (2, 3) and text.isalpha():
        name = (ISO_ALPHA2 if len(text) == 2 else ISO_ALPHA3).get(text.upper())
    else:
        name = _canonical_or(text, None)
    if name is None:
        pool = known_set if known_set is not None else COUNTRY_NAMES | set(ALIASES)
        raise ConfigError(f"unknown country {name_or_code!r}{_close(text, pool)}")
    if known_set is not None and name not in known_set:
        raise ConfigError(f"country {name_or_code!r} ({name}) is not in the data{_close(name, known_set)}")
    return name


def _canonical_or(label: str, default: str | None) -> str | None:
    """The canonical name of a label, else `default`."""
    try:
        return parse_country_label(label)[0]
    except SurveyDataError:
        return default
