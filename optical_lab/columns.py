"""Lossless column codecs for stored result files (layer 0, beside :mod:`optical_lab.io`, which reads them).

Two kinds of text file dominate a finished grid, and both are stored column by column here:

* **JSON lines** (``train_log.jsonl``: one record per training step) — :func:`encode_columns` /
  :func:`decode_columns`. Format 2 (what compaction writes now) stores each key's values in the form that
  compresses smallest *and* reads back as the very same JSON text, chosen per column by trying them:

  - ``json``: the values' JSON text, one per line (anything);
  - ``f4`` / ``f8``: IEEE floats, 4 bytes when float32 holds every value exactly (a loss logged from a float32
    tensor), else 8, byte-shuffled (all first bytes, then all second bytes, ... : the sign/exponent bytes of
    a column are nearly constant and compress away, as in Blosc's and HDF5's shuffle filter);
  - ``f8p``: floats XOR-ed with the linear prediction ``2 x[i-1] - x[i-2]`` (Gorilla-style, Pelkonen et al.
    2015): a learning-rate schedule becomes mostly zero bits;
  - ``dec<d>``: floats that are ``k / 10^d`` for integers ``k`` (seconds rounded to 4 places), stored as ``k``;
  - ``sig<n>``: floats whose shortest decimal form (``repr``) has at most ``n`` <= 9 significant digits (a value
    logged at a declared precision, :data:`optical_lab.methods.train_state.LOG_DIGITS`), stored as ``m * 10^e`` with
    ``m`` an ``n``-digit integer (int32) and ``e`` a small one (int8): ``float("<m>e<e>")`` is the value again,
    since the decimal ``m * 10^e`` is the one ``repr`` printed. A rounded float's double has a full binary
    mantissa that no compressor sees through; its decimal digits are all the information there is;
  - ``int``: integers as their successive differences (a step counter becomes a run of ones);
  - derived, nothing stored: ``const`` (one value for every row), ``same`` (equal to another column) and
    ``sum`` (``float32(a + float32(w) * b)`` of two float32 columns, exactly as the float32 training step
    computed a total loss from its terms: the loss column of most objectives).

  Format 1 (binary float32/float64 or JSON text per column, no derived columns) is still read.

* **CSV with a key column** (``*.per_query.csv``: ``qid`` then the metrics) — :func:`split_key_column` /
  :func:`join_key_column`: the first column (the query ids, identical in every cell scored on the same queries)
  is taken out to be stored once by hash, the rest stays in the cell.

* **JSON with shared subtrees** (a cell's ``config.json``: the comparison's plan, the same in every cell, the
  data files' hashes, the same in every cell of a language, and the training configuration, the same in every
  language's cell of an arm and seed) — :func:`split_subtrees` / :func:`join_subtrees`; a subtree that another file
  of the cell holds whole (the ``cell`` record of ``config.json`` is the cell's ``done.json`` less its fingerprint)
  is a reference to that file, checked by its SHA-256.

Each encoder is exact only for files written the usual way (JSON by ``json.dumps`` with its default
separators; CSV without quoting in the key column); :func:`encode_columns_checked` and the compaction
(:mod:`optical_lab.experiments.compact`) decode what they encoded and keep the original form when it differs.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import struct
from typing import Any, Callable

FORMAT_1, FORMAT_2 = "optical-lab columns 1", "optical-lab columns 2"
_WIDTH = {"b": 1, "i": 4, "f": 4, "d": 8, "q": 8, "Q": 8}
_SIG_MAX_DIGITS = 9  # the most significant digits a ``sig`` column's values may have (its mantissas are int32)
_SUM_WEIGHT_DIGITS = (1, 2, 3)  # significant digits of a loss weight tried when a total is not the plain sum


# ---------------------------------------------------------------- bytes
def shuffle(values: list[Any], code: str) -> bytes:
    """``values`` packed little-endian as ``code`` (struct), byte ``i`` of every value together for each ``i``."""
    packed, width = struct.pack(f"<{len(values)}{code}", *values), _WIDTH[code]
    return b"".join(packed[i::width] for i in range(width))


def unshuffle(chunk: bytes, code: str) -> list[Any]:
    """The values :func:`shuffle` packed."""
    width = _WIDTH[code]
    count = len(chunk) // width
    packed = bytearray(len(chunk))
    for i in range(width):
        packed[i::width] = chunk[i * count : (i + 1) * count]
    return list(struct.unpack(f"<{count}{code}", bytes(packed)))


def float32(x: float) -> float:
    """``x`` rounded to the nearest float32."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _predictions(values: list[float]) -> list[float]:
    """Linear extrapolation of each value from the two before it (0 and the first value at the start)."""
    return [0.0 if i == 0 else values[0] if i == 1 else 2 * values[i - 1] - values[i - 2] for i in range(len(values))]


# ---------------------------------------------------------------- one column, stored
def _f8p_encode(values: list[float]) -> bytes:
    return shuffle([_bits(v) ^ _bits(p) for v, p in zip(values, _predictions(values))], "Q")


def _f8p_decode(chunk: bytes) -> list[float]:
    values: list[float] = []
    for residual in unshuffle(chunk, "Q"):
        prediction = 0.0 if not values else values[0] if len(values) == 1 else 2 * values[-1] - values[-2]
        values.append(_from_bits(residual ^ _bits(prediction)))
    return values


def _int_encode(values: list[int]) -> bytes:
    return shuffle([b - a for a, b in zip([0, *values], values)], "q")


def _int_decode(chunk: bytes) -> list[int]:
    values, total = [], 0
    for step in unshuffle(chunk, "q"):
        total += step
        values.append(total)
    return values


def _decimals(values: list[float]) -> int | None:
    """The fewest decimals ``d`` (at most 9) with every value ``k / 10^d`` for an integer ``k``, or None."""
    for d in range(10):
        scale = 10**d
        if all(math.isfinite(v) and abs(v) < 1e9 and round(v * scale) / scale == v for v in values):
            return d
    return None


def _stored_forms(values: list[Any]) -> dict[str, tuple[bytes, Callable[[bytes], list[Any]]]]:
    """The forms that could hold ``values``: kind -> (body, its decoder)."""
    forms: dict[str, tuple[bytes, Callable[[bytes], list[Any]]]] = {
        "json": ("\n".join(json.dumps(v) for v in values).encode("utf-8"), _json_decode)
    }
    if all(type(v) is int and abs(v) < 2**62 for v in values):
        forms["int"] = (_int_encode(values), _int_decode)
    if all(type(v) is float for v in values):
        if all(abs(v) < 3e38 and float32(v) == v for v in values):
            forms["f4"] = (shuffle(values, "f"), lambda chunk: unshuffle(chunk, "f"))
        forms["f8"] = (shuffle(values, "d"), lambda chunk: unshuffle(chunk, "d"))
        forms["f8p"] = (_f8p_encode(values), _f8p_decode)
        if (d := _decimals(values)) is not None:
            forms[f"dec{d}"] = (_dec_encode(values, d), _dec_decoder(d))
        if (sig := _sig_parts(values)) is not None:
            forms[f"sig{sig[0]}"] = (_sig_encode(*sig[1:]), _sig_decode)
    return forms


def _json_decode(chunk: bytes) -> list[Any]:
    return [json.loads(v) for v in chunk.decode("utf-8").split("\n")]


def _shortest_decimal(x: float) -> tuple[int, int]:
    """``(m, e)`` with ``x == m * 10^e`` exactly as ``repr(x)`` writes it (``m`` without trailing zeros); ``x``
    finite."""
    mantissa, _, exponent = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    m, e = int(whole + fraction), int(exponent or 0) - len(fraction)
    while m and m % 10 == 0:
        m, e = m // 10, e + 1
    return m, e


def _sig_parts(values: list[float]) -> tuple[int, list[int], list[int]] | None:
    """``(n, mantissas, exponents)``: each value as ``m * 10^e`` with ``m`` of exactly ``n`` digits (0 for zero),
    ``n`` the most significant digits of any value's shortest decimal form; None when that is over
    :data:`_SIG_MAX_DIGITS` (a float32 or float64 result keeps 8 to 17), a value is not finite or an exponent
    leaves int8."""
    decimals = []
    for x in values:
        if not math.isfinite(x):
            return None
        decimals.append(_shortest_decimal(x))
    n = max((len(str(abs(m))) for m, _ in decimals), default=1)
    if n > _SIG_MAX_DIGITS:
        return None
    pads = [n - len(str(abs(m))) if m else 0 for m, _ in decimals]
    mantissas = [m * 10**pad for (m, _), pad in zip(decimals, pads)]
    exponents = [e - pad if m else 0 for (m, e), pad in zip(decimals, pads)]
    return (n, mantissas, exponents) if all(-128 <= e < 128 for e in exponents) else None


def _sig_encode(mantissas: list[int], exponents: list[int]) -> bytes:
    """The mantissas (int32), then the exponents (int8), each byte-shuffled: the exponents of a column of one
    magnitude are nearly constant and compress away."""
    return shuffle(mantissas, "i") + shuffle(exponents, "b")


def _sig_decode(chunk: bytes) -> list[float]:
    count = len(chunk) // 5
    mantissas, exponents = unshuffle(chunk[: 4 * count], "i"), unshuffle(chunk[4 * count :], "b")
    return [float(f"{m}e{e}") for m, e in zip(mantissas, exponents)]


def _dec_encode(values: list[float], d: int) -> bytes:
    return _int_encode([round(v * 10**d) for v in values])


def _dec_decoder(d: int) -> Callable[[bytes], list[Any]]:
    return lambda chunk: [k / 10**d for k in _int_decode(chunk)]


def _decoder(kind: str) -> Callable[[bytes], list[Any]]:
    if kind.startswith("dec"):
        return _dec_decoder(int(kind[3:]))
    if kind.startswith("sig"):
        return _sig_decode
    return {
        "json": _json_decode,
        "int": _int_decode,
        "f4": lambda chunk: unshuffle(chunk, "f"),
        "f8": lambda chunk: unshuffle(chunk, "d"),
        "f8p": _f8p_decode,
    }[kind]


def _texts(values: list[Any]) -> list[str]:
    return [json.dumps(v) for v in values]


def smallest_form(values: list[Any]) -> tuple[str, bytes]:
    """The stored form of one column that xz-compresses smallest among those that read back as the same JSON
    text (``json`` on a tie: it reads as it is)."""
    texts, best = _texts(values), None
    for kind, (body, decode) in _stored_forms(values).items():
        if kind != "json" and _texts(decode(body)) != texts:
            continue
        size = len(lzma.compress(body, preset=6))
        if best is None or size < best[0]:
            best = (size, kind, body)
    assert best is not None  # json always qualifies
    return best[1], best[2]


# ---------------------------------------------------------------- one column, derived from others
def _derivation(key: str, columns: dict[str, list[Any]], rows_of: dict[str, tuple[int, ...]], uses) -> list | None:
    """How column ``key`` follows from the others without storing it (see the module doc), or None.

    ``uses(other)``: the columns ``other`` is computed from (a column may not be derived from one derived from it)."""
    values, texts = columns[key], _texts(columns[key])
    if len(set(texts)) == 1:
        return ["const", values[0]]
    peers = [o for o in columns if o != key and rows_of[o] == rows_of[key] and key not in uses(o)]
    for other in peers:
        if _texts(columns[other]) == texts:
            return ["same", other]
    floats = [o for o in peers if _all_float32(columns[o])]
    if not _all_float32(values):
        return None
    for a in floats:
        for b in floats:
            if a != b and (weight := _sum_weight(values, columns[a], columns[b])) is not None:
                return ["sum", [a, b, weight]]
    return None


def _all_float32(values: list[Any]) -> bool:
    return all(type(v) is float and abs(v) < 3e38 and float32(v) == v for v in values)


def _weighted_sum(a: list[float], b: list[float], weight: float) -> list[float]:
    """``float32(a + float32(weight) * b)`` per row, each operation rounded to float32 as a float32 step does."""
    w = float32(weight)
    return [float32(x + float32(w * y)) for x, y in zip(a, b)]


def _sum_weight(total: list[float], a: list[float], b: list[float]) -> float | None:
    """The weight ``w`` with ``total == float32(a + w b)`` on every row (1, else the ratio seen on the first row
    rounded to a few significant digits), or None."""
    candidates = [1.0]
    row = next((i for i, y in enumerate(b) if y != 0), None)
    if row is not None:
        ratio = (total[row] - a[row]) / b[row]
        candidates += [float(f"{ratio:.{digits}g}") for digits in _SUM_WEIGHT_DIGITS]
    for weight in dict.fromkeys(candidates):
        if _weighted_sum(a[:8], b[:8], weight) == total[:8] and _weighted_sum(a, b, weight) == total:
            return weight
    return None


def _derive(kind: str, argument: Any, count: int, columns: dict[str, list[Any]]) -> list[Any]:
    """The values of a derived column of ``count`` rows, from the columns known so far."""
    if kind == "const":
        return [argument] * count
    if kind == "same":
        return columns[argument]
    a, b, weight = argument
    return _weighted_sum(columns[a], columns[b], weight)


# ---------------------------------------------------------------- JSON lines
def _by_column(rows: list[dict[str, Any]]) -> tuple[dict, dict[str, list[Any]], dict[str, tuple[int, ...]]]:
    """Each record's key tuple (numbered), every key's values in row order and the rows it occurs in."""
    schemas: dict[tuple[str, ...], int] = {}
    columns: dict[str, list[Any]] = {}
    rows_of: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        schemas.setdefault(tuple(row), len(schemas))
        for key, value in row.items():
            columns.setdefault(key, []).append(value)
            rows_of.setdefault(key, []).append(i)
    return schemas, columns, {k: tuple(v) for k, v in rows_of.items()}


def encode_columns(data: bytes) -> bytes:
    """A JSON-lines file as a header line (format 2: record layouts, and per column its form) and the stored
    columns' bodies; see the module doc. Decoding re-serialises each record with ``json.dumps`` (default
    separators), so this is lossless only for files written that way: :func:`encode_columns_checked` verifies."""
    text = data.decode("utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    schemas, columns, rows_of = _by_column(rows)
    derived: dict[str, list] = {}

    def uses(other: str) -> set[str]:
        """Every column ``other`` is computed from, directly or not."""
        entry = derived.get(other)
        if entry is None or entry[0] == "const":
            return set()
        direct = {entry[1]} if entry[0] == "same" else set(entry[1][:2])
        return direct.union(*(uses(o) for o in direct))

    entries, bodies = [], []
    for key in columns:
        how = _derivation(key, columns, rows_of, uses)
        if how is not None:
            derived[key] = how
            entries.append([key, how[0], 0, how[1]])
            continue
        kind, body = smallest_form(columns[key])
        entries.append([key, kind, len(body)])
        bodies.append(body)
    header = {
        "format": FORMAT_2,
        "newline": text.endswith("\n"),
        "schemas": [list(s) for s in schemas],
        "rows": [schemas[tuple(r)] for r in rows],
        "columns": entries,
    }
    return json.dumps(header).encode("utf-8") + b"\n" + b"".join(bodies)


def decode_columns(encoded: bytes) -> bytes:
    """The JSON-lines bytes :func:`encode_columns` encoded (format 2, or format 1 as written before)."""
    head, _, body = encoded.partition(b"\n")
    header = json.loads(head)
    if header.get("format") not in (FORMAT_1, FORMAT_2):
        raise ValueError(f"not an {FORMAT_2!r} file (format {header.get('format')!r})")
    values: dict[str, list[Any]] = {}
    offset = 0
    for key, kind, size, *_ in header["columns"]:
        if header["format"] == FORMAT_2 and kind in ("const", "same", "sum"):
            continue
        chunk, offset = body[offset : offset + size], offset + size
        if header["format"] == FORMAT_1 and kind != "json":
            values[key] = list(struct.unpack(f"<{size // struct.calcsize(kind)}{kind}", chunk))
        else:
            values[key] = _decoder(kind)(chunk)
    _derive_all(header, values)
    cursor = {key: iter(column) for key, column in values.items()}
    lines = [json.dumps({key: next(cursor[key]) for key in header["schemas"][schema]}) for schema in header["rows"]]
    return ("\n".join(lines) + ("\n" if header["newline"] else "")).encode("utf-8")


def _derive_all(header: dict[str, Any], values: dict[str, list[Any]]) -> None:
    """Fill in the derived columns, each once what it is computed from is known."""
    pending = [entry for entry in header["columns"] if len(entry) > 3]
    counts: dict[str, int] = {}
    for schema in header["rows"]:
        for key in header["schemas"][schema]:
            counts[key] = counts.get(key, 0) + 1
    while pending:
        ready = [e for e in pending if e[1] == "const" or all(k in values for k in _operands(e))]
        if not ready:
            raise ValueError(f"derived columns {[e[0] for e in pending]} refer to each other in a cycle")
        for key, kind, _, argument in ready:
            values[key] = _derive(kind, argument, counts[key], values)
        pending = [e for e in pending if e[0] not in values]


def _operands(entry: list) -> list[str]:
    return [entry[3]] if entry[1] == "same" else list(entry[3][:2])


def encode_columns_checked(data: bytes) -> bytes | None:
    """:func:`encode_columns` of ``data`` when it decodes back to exactly ``data``, else None."""
    try:
        encoded = encode_columns(data)
    except (ValueError, UnicodeDecodeError, struct.error, AttributeError, OverflowError):
        return None
    return encoded if decode_columns(encoded) == data else None


# ---------------------------------------------------------------- CSV with a key column
def split_key_column(data: bytes) -> tuple[bytes, bytes] | None:
    """``(key column, the rest)`` of a CSV file: each line's text up to its first comma, one per line, and what
    follows that comma; None when a line has no comma or a quote (a quoted field may hold a comma)."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    body = lines[:-1] if text.endswith("\n") else lines
    if not body or any("," not in line or '"' in line for line in body):
        return None
    keys, rest = zip(*(line.split(",", 1) for line in body))
    ending = "\n" if text.endswith("\n") else ""
    return ("\n".join(keys) + ending).encode("utf-8"), ("\n".join(rest) + ending).encode("utf-8")


def join_key_column(keys: bytes, rest: bytes) -> bytes:
    """The CSV file :func:`split_key_column` split."""
    ending = "\n" if rest.endswith(b"\n") else ""
    key_lines = keys.decode("utf-8").removesuffix(ending).split("\n")
    rest_lines = rest.decode("utf-8").removesuffix(ending).split("\n")
    if len(key_lines) != len(rest_lines):
        raise ValueError(f"a key column of {len(key_lines)} lines for {len(rest_lines)} lines of values")
    return ("\n".join(f"{k},{r}" for k, r in zip(key_lines, rest_lines)) + ending).encode("utf-8")


# ---------------------------------------------------------------- JSON with shared subtrees
BLOB_KEY = "$blob"  # {"$blob": "<sha256>"} stands for a subtree stored once, by hash
# {"$sibling": "<name>", "sha256": ..., "without": [keys]} stands for the JSON object the file <name> beside it holds
# (checked against the SHA-256 of its bytes), less those keys: a subtree stored in full in another file of the cell
SIBLING_KEY = "$sibling"


def split_subtrees(
    data: bytes, paths: tuple[tuple[str, ...], ...], sibling: tuple[tuple[str, ...], str, bytes] | None = None
) -> tuple[bytes, list[bytes]] | None:
    """``(skeleton, subtrees)``: a JSON object written by ``write_json`` (``json.dumps(indent=2,
    ensure_ascii=False)`` and a newline) with the subtree at each of ``paths`` (keys from the top; those present)
    replaced by ``{"$blob": <SHA-256 of its compact JSON>}``, and those compact JSONs (to be stored once, by hash);
    None when nothing is replaced or the text is not what ``write_json`` writes.

    ``sibling`` = ``(path, name, content)``: the subtree at ``path``, when it is the JSON object ``content`` (the
    file ``name`` beside this one, e.g. a cell's ``done.json``) less some of its keys, in its order, is replaced
    first by a ``{"$sibling": name, ...}`` reference (a blob path inside it is then gone with it)."""
    text = data.decode("utf-8")
    try:
        tree = json.loads(text)
    except ValueError:
        return None
    if not isinstance(tree, dict) or json.dumps(tree, indent=2, ensure_ascii=False) + "\n" != text:
        return None
    replaced = sibling is not None and _refer_to_sibling(tree, *sibling)
    subtrees = []
    for path in paths:
        parent = _parent(tree, path)
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), dict):
            compact = json.dumps(parent[path[-1]], ensure_ascii=False).encode("utf-8")
            parent[path[-1]] = {BLOB_KEY: hashlib.sha256(compact).hexdigest()}
            subtrees.append(compact)
    return (json.dumps(tree, ensure_ascii=False).encode("utf-8"), subtrees) if subtrees or replaced else None


def _parent(tree: dict, path: tuple[str, ...]) -> Any:
    parent: Any = tree
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) and SIBLING_KEY not in parent else None
    return parent if isinstance(parent, dict) and SIBLING_KEY not in parent else None


def _refer_to_sibling(tree: dict, path: tuple[str, ...], name: str, content: bytes) -> bool:
    """Replace the subtree at ``path`` by a reference to the file ``name`` holding ``content`` when that file's
    JSON object less some keys is the very subtree (same keys, order and JSON text); whether it did."""
    parent = _parent(tree, path)
    subtree = parent.get(path[-1]) if parent is not None else None
    try:
        whole = json.loads(content)
    except ValueError:
        return False
    if not isinstance(subtree, dict) or not isinstance(whole, dict) or not set(subtree) <= set(whole):
        return False
    without = [key for key in whole if key not in subtree]
    if json.dumps(_less(whole, without), ensure_ascii=False) != json.dumps(subtree, ensure_ascii=False):
        return False
    parent[path[-1]] = {SIBLING_KEY: name, "sha256": hashlib.sha256(content).hexdigest(), "without": without}
    return True


def _less(whole: dict, without: list[str]) -> dict:
    return {key: value for key, value in whole.items() if key not in without}


def join_subtrees(
    skeleton: bytes, read_blob: Callable[[str], bytes], read_sibling: Callable[[str, str], bytes] | None = None
) -> bytes:
    """The JSON file :func:`split_subtrees` split (``read_blob(sha256)``: a stored subtree's compact JSON;
    ``read_sibling(name, sha256)``: the bytes of the file ``name`` beside it, checked against ``sha256``)."""

    def restore(node: Any) -> Any:
        if isinstance(node, dict):
            if list(node) == [BLOB_KEY]:
                return json.loads(read_blob(node[BLOB_KEY]))
            if list(node) == [SIBLING_KEY, "sha256", "without"] and read_sibling is not None:
                return _less(json.loads(read_sibling(node[SIBLING_KEY], node["sha256"])), node["without"])
            return {key: restore(value) for key, value in node.items()}
        return [restore(value) for value in node] if isinstance(node, list) else node

    return (json.dumps(restore(json.loads(skeleton)), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
