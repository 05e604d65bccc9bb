"""Verbalise a SPARQL query: turn it into the words a text retriever can match a question against.

The verbaliser is deliberately simple and deterministic (no model, no knowledge graph look-up):

1. ``PREFIX p: <iri>`` declarations are read into a map (plus the usual DBpedia prefixes —
   ``dbo dbr dbp res dbc yago foaf rdf rdfs xsd dct owl skos`` — which some QALD queries use
   without declaring them) and then **dropped**: namespaces never become words.
2. The query is tokenised into IRIs, prefixed names, literals, variables, numbers, keywords and
   punctuation.
3. **IRIs and prefixed names are reduced to their local names** (after the last ``#`` or ``/``;
   ``%xx`` escapes decoded):

   * resources (``…/resource/…``, e.g. ``dbr:Salt_Lake_City``): underscores become spaces, case
     kept, no camelCase split (``WikiLeaks``, ``McDonald`` stay whole); ``Category:`` is dropped
     (``dbc:Assassins_of_Julius_Caesar`` -> "Assassins of Julius Caesar");
   * ontology terms, properties and classes (``dbo:timeZone``, ``dbp:densityrank``,
     ``yago:WikicatStatesOfTheUnitedStates``): camelCase and underscores are split; a term that
     starts lower-case (a property) is lower-cased ("time zone"); the YAGO ``Wikicat`` prefix and
     trailing WordNet synset numbers (``City108524735``) are dropped;
   * structural terms with no content are dropped: ``rdf:type`` / ``a``, ``dct:subject``,
     ``rdfs:label``, ``owl:sameAs``, and everything in the XSD namespace (``xsd:date(?d)`` casts, datatypes).
4. **Literals** keep their text without quotes, language tag or datatype (``"Rodzilla"@en`` ->
   "Rodzilla"; ``"1836-12-31T00:00:00Z"^^xsd:dateTime`` -> "1836-12-31"); a language code compared
   with ``lang(…)`` / ``langMatches`` (``FILTER (lang(?s) = 'en')``) is dropped.
5. **Variables** (``?uri``) and **syntax keywords** (SELECT, DISTINCT, WHERE, FILTER, UNION,
   ORDER BY, LIMIT, COUNT, …, and function names such as ``str`` or ``contains``) are dropped, and so
   are the numbers after LIMIT / OFFSET. Other numbers (``FILTER (?year < 1400)``) are kept.
6. Phrases are joined with single spaces in query order; a phrase already emitted is not repeated
   (``UNION`` branches often restate the same triple).

``keep_operators=True`` (off by default) instead maps a few operators to hint words: ASK ->
"whether", COUNT -> "number of", ORDER BY DESC -> "most", ORDER BY ASC -> "least".

Examples (QALD-9-plus test)::

    q99  SELECT DISTINCT ?uri WHERE { res:Salt_Lake_City <http://dbpedia.org/ontology/timeZone> ?uri }
         -> "Salt Lake City time zone"
    q98  SELECT DISTINCT ?uri WHERE { ?uri dct:subject dbc:Assassins_of_Julius_Caesar }
         -> "Assassins of Julius Caesar"
    q6   ASK WHERE { <http://dbpedia.org/resource/Taiko> a <http://dbpedia.org/class/yago/WikicatJapaneseMusicalInstruments> }
         -> "Taiko Japanese Musical Instruments"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

DEFAULT_PREFIXES = {
    "dbo": "http://dbpedia.org/ontology/",
    "dbr": "http://dbpedia.org/resource/",
    "res": "http://dbpedia.org/resource/",
    "dbp": "http://dbpedia.org/property/",
    "dbc": "http://dbpedia.org/resource/Category:",
    "yago": "http://dbpedia.org/class/yago/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dct": "http://purl.org/dc/terms/",
    "owl": "http://www.w3.org/2002/07/owl#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
}
XSD_NS = "http://www.w3.org/2001/XMLSchema#"
STRUCTURAL_IRIS = frozenset(
    {
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
        "http://purl.org/dc/terms/subject",
        "http://www.w3.org/2000/01/rdf-schema#label",
        "http://www.w3.org/2002/07/owl#sameAs",
    }
)
KEYWORDS = frozenset(
    """
select ask construct describe distinct reduced where from named prefix base filter optional union minus
graph service silent bind values as order by asc desc limit offset group having count sum avg min max
sample group_concat separator not exists in a true false undef lang langmatches datatype bound iri uri
str regex replace contains strstarts strends strlen substr ucase lcase concat encode_for_uri year month
day hours minutes seconds timezone tz now abs ceil floor round rand isiri isuri isblank isliteral
isnumeric sameterm if coalesce strlang strdt strbefore strafter md5 sha1 sha256 bnode uuid struuid
""".split()
)
HINTS = {"ask": "whether", "count": "number of", "desc": "most", "asc": "least"}

_PREFIX_DECL = re.compile(r"\bPREFIX\s+([A-Za-z][\w.-]*)?:\s*<([^<>\s]*)>", re.IGNORECASE)
_BASE_DECL = re.compile(r"\bBASE\s+<[^<>\s]*>", re.IGNORECASE)
_TOKEN = re.compile(
    r"""
    (?P<iri><[^<>"{}|^`\\\s]*>)
  | (?P<literal>(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')(?:@[A-Za-z]+(?:-[A-Za-z0-9]+)*|\^\^(?:<[^<>\s]*>|[A-Za-z][\w.-]*:[\w.%-]*))?)
  | (?P<var>[?$][A-Za-z0-9_]+)
  | (?P<pname>(?:[A-Za-z][\w-]*)?:(?:[\w%-]|\\.|\.(?=[\w%-]))*)
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<other>\S)
    """,
    re.VERBOSE,
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_LANG_CODE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)*$")


@dataclass(frozen=True)
class Token:
    kind: str  # iri | literal | var | pname | number | word | other
    text: str


def tokenize(sparql: str) -> tuple[dict[str, str], list[Token]]:
    """``(prefix map, tokens)``; the map holds the default prefixes overridden by the query's own."""
    prefixes = dict(DEFAULT_PREFIXES)
    for match in _PREFIX_DECL.finditer(sparql):
        prefixes[match.group(1) or ""] = match.group(2)
    body = _BASE_DECL.sub(" ", _PREFIX_DECL.sub(" ", sparql))
    tokens = [Token(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(body)]
    return prefixes, tokens


def expand(pname: str, prefixes: dict[str, str]) -> str | None:
    """``dbo:spouse`` -> ``http://dbpedia.org/ontology/spouse`` (``None`` for an unknown prefix)."""
    prefix, _, local = pname.partition(":")
    base = prefixes.get(prefix)
    return None if base is None else base + local.replace("\\", "")


def split_words(name: str) -> list[str]:
    """Split underscores, hyphen-free camelCase and letter/digit boundaries: ``timeZone`` -> time, Zone."""
    return [w for part in re.split(r"[_\s]+", name) for w in _CAMEL.split(part) if w]


def local_name(iri: str) -> str:
    """Text after the last ``#`` or ``/`` (``%xx`` decoded)."""
    iri = iri.rstrip("/#")
    cut = max(iri.rfind("#"), iri.rfind("/"))
    return unquote(iri[cut + 1 :])


def iri_words(iri: str) -> str:
    """The phrase an IRI contributes ("" when it carries no content)."""
    if iri in STRUCTURAL_IRIS or iri.startswith(XSD_NS):
        return ""
    name = local_name(iri)
    if "/resource/" in iri:  # an entity (or a category): keep its title as written
        if name.startswith("Category:"):
            name = name[len("Category:") :]
        return " ".join(name.replace("_", " ").split())
    if "/class/yago/" in iri:
        name = re.sub(r"^Wikicat", "", name)
        name = re.sub(r"(?<=[A-Za-z])\d{6,}$", "", name)  # WordNet synset id: City108524735
    words = split_words(name)
    if not words:
        return ""
    if name[:1].islower():  # a property: timeZone -> "time zone"
        words = [w.lower() if not w.isupper() or len(w) == 1 else w for w in words]
    return " ".join(words)


def literal_text(token: str) -> str:
    """``"Rodzilla"@en`` -> Rodzilla; ``"1836-12-31T00:00:00Z"^^xsd:dateTime`` -> 1836-12-31."""
    quote = token[0]
    end = token.rfind(quote)
    text = token[1:end].replace("\\" + quote, quote).replace("\\\\", "\\")
    text = re.sub(r"^(\d{4}-\d{2}-\d{2})T00:00:00(?:Z|[+-]00:00)?$", r"\1", text.strip())
    return " ".join(text.split())


def verbalize(sparql: str, keep_operators: bool = False) -> str:
    """SPARQL query -> the words of its entities, properties, classes and literals (see module doc)."""
    prefixes, tokens = tokenize(sparql)
    phrases: list[str] = []
    recent_words: list[str] = []  # the last few keyword tokens, lower-cased
    for token in tokens:
        phrase = ""
        if token.kind == "iri":
            phrase = iri_words(token.text[1:-1])
        elif token.kind == "pname":
            iri = expand(token.text, prefixes)
            if iri is not None:
                phrase = iri_words(iri)
            elif token.text.partition(":")[0].lower() != "xsd":
                phrase = " ".join(split_words(unquote(token.text.partition(":")[2])))
        elif token.kind == "literal":
            text = literal_text(token.text)
            in_lang_test = any(w in ("lang", "langmatches") for w in recent_words[-3:])
            if not (in_lang_test and _LANG_CODE.match(text)):
                phrase = text
        elif token.kind == "number":
            if not recent_words or recent_words[-1] not in ("limit", "offset"):
                phrase = token.text
        elif token.kind == "word":
            word = token.text.lower()
            recent_words.append(word)
            if keep_operators and word in HINTS:
                phrase = HINTS[word]  # otherwise keywords and function names are dropped
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return " ".join(phrases)
