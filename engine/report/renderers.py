"""The renderers: text (aligned tables for a terminal), Markdown, CSV (one table) and
JSON, all from Report.to_dict(), so every format shows the same numbers."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from engine.report.figures import CSV_TABLES, FILL_COLUMNS, FORMATS, MEMO_MAX, ORDER_COLUMNS, gc_paused, register_memo

if TYPE_CHECKING:
    from engine.report.building import Report


def render(report: Report, fmt: str = "text", *, table: str = "orders", color: bool = False) -> str:
    """The report as text (a terminal report), md (Markdown), csv (one table:
    table="orders" or "fills") or json (one object). color: bold titles in text
    (ANSI), for a terminal."""
    with gc_paused():
        return _render(report.to_dict(), fmt, table, color)


def render_data(data: dict[str, Any], fmt: str = "text", *, table: str = "orders", color: bool = False) -> str:
    """render() of a report already turned into data (Report.to_dict(), or the same
    read back from the report cache)."""
    with gc_paused():
        return _render(data, fmt, table, color)


def render_parts(
    data: dict[str, Any],
    fmt: str = "text",
    *,
    table: str = "orders",
    color: bool = False,
    cells: dict[str, list[list[str]]] | None = None,
) -> tuple[str, str | None]:
    """render_data() in two parts: (head, body), head + body being the rendering. The
    body does not depend on the journal's path or the time of generation (the report
    cache keeps it); None for JSON, whose object holds both (the whole text is head)."""
    with gc_paused():
        return _render_parts(data, fmt, table, color, cells)


def render_head(fmt: str, journal: str, scope: str, generated_at: str, *, color: bool = False) -> str:
    """The head of a rendering (render_parts) of a report of `scope` (its session id or
    "all") from the journal at `journal`, generated at `generated_at` (ISO)."""
    if fmt == "text":
        bold, plain = ("\x1b[1m", "\x1b[0m") if color else ("", "")
        return (
            f"{bold}execdesk execution report{plain}\n"
            f"journal: {_printable(journal, 200)}   scope: {scope}   generated: {_ts(generated_at)}"
        )
    if fmt == "md":
        return "\n".join(
            [
                "# execdesk execution report",
                "",
                f"- journal: `{_md_escape(journal)}`",
                f"- scope: `{scope}`",
                f"- generated: {_ts(generated_at)}",
                "",
                "",
            ]
        )
    if fmt == "csv":
        return ""
    raise ValueError(f"a {fmt!r} rendering has no separate head")


def _render(data: dict[str, Any], fmt: str, table: str, color: bool) -> str:
    head, body = _render_parts(data, fmt, table, color)
    return head if body is None else head + body


def _render_parts(
    data: dict[str, Any], fmt: str, table: str, color: bool, cells: dict[str, list[list[str]]] | None = None
) -> tuple[str, str | None]:
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False), None
    if fmt == "csv":
        if table not in CSV_TABLES:
            raise ValueError(f"csv table must be one of {', '.join(CSV_TABLES)}, not {table!r}")
        return "", _render_csv(data, table)
    if fmt in ("md", "text"):
        head = render_head(fmt, data["journal"], data["session_id"], data["generated_at"], color=color)
        return head, _render_md(data, cells) if fmt == "md" else _render_text(data, color=color, cells=cells)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def _printable(text: str | None, limit: int = 80) -> str:
    """One line, control characters escaped, at most limit characters: for
    echoing signal input (which may be binary garbage) in text and Markdown."""
    if text is None:
        return ""
    if text.isprintable():  # most text: nothing to escape
        return text if len(text) <= limit else text[: limit - 1] + "…"
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _cell(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


_NUM: dict[tuple[str, int], str] = {}  # _num of the same figure (a price, a size) written again
register_memo(_NUM)


def _num(value: str | None, places: int) -> str:
    """A Decimal string rounded for reading (exact figures are in the JSON)."""
    if value is None:
        return ""
    text = _NUM.get((value, places))
    if text is None:
        text = _num_of(value, places)
        if len(_NUM) < MEMO_MAX:
            _NUM[(value, places)] = text
    return text


def _num_of(value: str, places: int) -> str:
    whole, _, frac = value.partition(".")
    digits = whole[1:] if whole[:1] == "-" else whole
    if digits.isdigit() and frac.isdigit() == bool(frac) and len(frac) <= places and digits.isascii():
        # a plain decimal needing no rounding (most prices and sizes): padded, no Decimal
        grouped = f"{whole[: len(whole) - len(digits)]}{int(digits):,}"
        return f"{grouped}.{frac:0<{places}}" if places else grouped
    try:
        return f"{Decimal(value):,.{places}f}"
    except (InvalidOperation, ValueError):
        return str(value)


def _pct(rate: str | None) -> str:
    return "" if rate is None else f"{Decimal(rate) * 100:.2f}%"


def _ts(value: str | None) -> str:
    """An ISO timestamp for reading: "2026-03-05 14:30:05.020" (UTC), exact in the JSON."""
    if not value:
        return ""
    if value.endswith("+00:00") and value[10:11] == "T":  # UTC as isoformat() writes it: no parsing
        if len(value) == 25:  # no fraction
            return f"{value[:10]} {value[11:19]}.000Z"
        if len(value) == 32 and value[19] == ".":  # microseconds
            return f"{value[:10]} {value[11:23]}Z"
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return value
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + ("Z" if t.tzinfo is not None else "")


def _ms_cell(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


# sections shared by text and Markdown: (title, columns, rows) -----------------------------------


def order_cells_of(o: dict[str, Any]) -> list[str]:
    """An order's cells in the text and Markdown tables (without its session's)."""
    denial = o["denial_reason"] or ""
    if o["detail"]:
        denial = f"{denial}: {o['detail']}" if denial else o["detail"]
    return [
        o["client_order_id"],
        o["symbol"],
        o["side"],
        _cell(o["qty"]),
        o["status"],
        _cell(o["filled_qty"]),
        _num(o["filled_avg_price"], 4),
        _cell(o["limit_price"]),
        _cell(o["decision_price"]),
        _num(o["slippage_bps"], 2),
        "" if o["signal"] is None else f"{o['signal']:+.3f}",
        o["reason"] or "",
        _printable(denial, 60),
        "ext" if o["external"] else "",
    ]


def fill_cells_of(f: dict[str, Any]) -> list[str]:
    """A fill's cells in the text and Markdown tables."""
    return [
        f["execution_id"],
        f["client_order_id"],
        f["symbol"],
        f["side"],
        f["qty"],
        f["price"],
        _ts(f["ts"]),
        _num(f["slippage_bps"], 2),
        _num(f["realized_pl"], 2),
    ]


def _fits(cells: dict[str, list[list[str]]], data: dict[str, Any]) -> bool:
    return len(cells.get("orders", ())) == len(data["orders"]) and len(cells.get("fills", ())) == len(data["fills"])


def _sections(
    data: dict[str, Any], cells: dict[str, list[list[str]]] | None = None
) -> list[tuple[str, list[str], list[list[str]], str | None]]:
    """The sections of the text and Markdown renderings. cells: the orders' and fills'
    cells (order_cells_of, fill_cells_of of data's rows, in their order), when they were
    kept (engine/report/fold.py): not made again."""
    s = data["summary"]
    fr, sl, pnl = s["fill_rate"], s["slippage"], s["pnl"]
    acct = s["account"]
    multi = data["session_id"] == "all"
    out: list[tuple[str, list[str], list[list[str]], str | None]] = []

    sess_rows = []
    for h in data["sessions"]:
        runs = len(h["runs"])
        sess_rows.append(
            [
                h["session_id"],
                h["venue_date"] or "",
                _ts(h["started_at"]),
                _ts(h["ended_at"]),
                h["ended_how"],
                str(runs),
            ]
        )
    out.append(
        (
            "Session" + ("s" if multi else ""),
            ["session", "venue date", "started", "ended", "how it ended", "runs"],
            sess_rows,
            None,
        )
    )

    summary = [
        ["orders", str(s["orders"])],
        ["orders by status", ", ".join(f"{k} {v}" for k, v in s["orders_by_status"].items()) or "none"],
        ["batches processed", str(s["batches"])],
        ["orders submitted", str(fr["orders_submitted"])],
        [
            "fill rate (orders)",
            f"{fr['orders_filled']}/{fr['orders_submitted']} filled "
            f"({_pct(fr['orders_rate'])}); {fr['orders_with_fills']} with any fill",
        ],
        ["fill rate (qty)", f"{_num(fr['filled_qty'], 2)} / {_num(fr['submitted_qty'], 2)} ({_pct(fr['qty_rate'])})"],
        ["fills", str(s["fills"])],
        ["slippage (notional-weighted)", f"{_num(sl['weighted_bps'], 2)} bps" if sl["weighted_bps"] else "n/a"],
        [
            "slippage (mean / best / worst)",
            f"{_num(sl['mean_bps'], 2)} / {_num(sl['best_bps'], 2)} / {_num(sl['worst_bps'], 2)} bps"
            if sl["mean_bps"] is not None
            else "n/a",
        ],
        ["slippage cost", _num(sl["cost"], 2)],
        ["realized P&L (average cost)", _num(pnl["realized"], 2)],
        ["unrealized P&L", f"{_num(pnl['unrealized'], 2)} (marked at: {pnl['unrealized_source']})"],
        ["opening positions", pnl["opening_positions_source"]],
    ]
    if acct:
        summary.append(
            [
                "account (last snapshot)",
                f"equity {_num(acct['equity'], 2)}, day P&L {_num(acct['day_pl'], 2)} (equity - last_equity)",
            ]
        )
    ap = s["approvals"]
    summary += [
        [
            "approvals",
            f"requested {ap['requested']}, approved {ap['approved']}, "
            f"rejected {ap['rejected']}, expired {ap['expired']}",
        ],
        ["not sent (denied, operator-rejected, approval expired)", str(s["denied"])],
        ["rejected by the venue", str(s["venue_rejected"])],
        ["submit outcome unknown", str(s["submit_unknown"])],
        ["dropped signals", str(s["dropped_signals"])],
        ["signal batches skipped (backlog)", str(s["skipped_signal_batches"])],
        ["cancel requests", ", ".join(f"{k} {v}" for k, v in s["cancel_requests_by_cause"].items()) or "0"],
        ["risk-state changes", str(s["state_changes"])],
        ["kill-switch events", str(s["kill_switch_events"])],
    ]
    out.append(("Summary", ["figure", "value"], summary, None))

    lat_rows = []
    for key, st in data["latency_ms"].items():
        lat_rows.append(
            [
                key.replace("_", " "),
                str(st["count"]),
                _ms_cell(st["p50"]),
                _ms_cell(st["p90"]),
                _ms_cell(st["p99"]),
                _ms_cell(st["max"]),
            ]
        )
    out.append(("Latency (ms, from journal times)", ["series", "n", "p50", "p90", "p99", "max"], lat_rows, None))

    order_cols = (["session"] if multi else []) + [
        "client_order_id",
        "symbol",
        "side",
        "qty",
        "status",
        "filled",
        "avg price",
        "limit",
        "decision",
        "slip bps",
        "signal",
        "reason",
        "denial / detail",
        "ext",
    ]
    kept = cells if cells is not None and _fits(cells, data) else None
    order_cells = kept["orders"] if kept is not None else [order_cells_of(o) for o in data["orders"]]
    if multi:
        order_rows = [[o["session_id"], *row] for o, row in zip(data["orders"], order_cells, strict=True)]
    else:
        order_rows = order_cells
    out.append((f"Orders ({len(order_rows)})", order_cols, order_rows, "no orders"))

    fill_rows = kept["fills"] if kept is not None else [fill_cells_of(f) for f in data["fills"]]
    out.append(
        (
            f"Fills ({len(fill_rows)})",
            ["execution_id", "client_order_id", "symbol", "side", "qty", "price", "ts", "slip bps", "realized"],
            fill_rows,
            "no fills",
        )
    )

    pos_rows = [
        [
            p["symbol"],
            p["qty"],
            _num(p["avg_entry_price"], 4),
            _num(p["mark_price"], 4),
            p["mark_source"] or "",
            _num(p["unrealized_pl"], 2),
            _num(p["realized_pl"], 2),
            _cell(p["broker_qty"]),
        ]
        for p in data["positions"]
    ]
    out.append(
        (
            "Positions and P&L (average cost)",
            ["symbol", "qty", "avg entry", "mark", "mark source", "unrealized", "realized", "broker qty"],
            pos_rows,
            "no positions",
        )
    )

    out.append(
        (
            "Denials by reason (local checks, nothing sent)",
            ["reason", "count"],
            [[k, str(v)] for k, v in data["denials_by_reason"].items()],
            "no denials",
        )
    )
    out.append(
        (
            "Rejected by the venue",
            ["client_order_id", "http", "code", "message"],
            [
                [r["client_order_id"], _cell(r["http_status"]), _cell(r["code"]), _printable(r["message"], 80)]
                for r in data["venue_rejections"]
            ],
            "no venue rejections",
        )
    )
    out.append(
        (
            "Dropped signals by reason",
            ["reason", "count"],
            [[k, str(v)] for k, v in data["dropped_by_reason"].items()],
            "no dropped signals",
        )
    )
    out.append(
        (
            "Dropped signals",
            ["ts", "symbol", "reason", "input"],
            [
                [_ts(d["ts"]), d["symbol"] or "", _printable(d["reason"], 60), _printable(d["line"], 50)]
                for d in data["dropped"]
            ],
            None,
        )
    )
    out.append(
        (
            "Risk-state changes",
            ["ts", "from", "to", "cause"],
            [
                [_ts(c["ts"]), c["previous"] or "", c["state"], _printable(c["cause"], 80)]
                for c in data["state_changes"]
            ],
            "no risk-state changes",
        )
    )
    out.append(
        (
            "Run-time overrides",
            ["ts", "symbol", "set"],
            [
                [
                    _ts(o["ts"]),
                    o["symbol"],
                    "cleared"
                    if o["cleared"]
                    else ", ".join(
                        f"{k}={o[k]}"
                        for k in ("mode", "max_position_usd", "max_position_pct", "size_multiplier", "side")
                        if o.get(k) is not None
                    ),
                ]
                for o in data.get("overrides", [])
            ],
            "no run-time overrides",
        )
    )
    out.append(
        (
            "Kill switch",
            ["ts", "phase", "after request (ms)", "counts", "detail"],
            [
                [
                    _ts(k["ts"]),
                    k["phase"],
                    _ms_cell(k["since_request_ms"]),
                    ", ".join(f"{a} {b}" for a, b in k["counts"].items()),
                    _printable(k["detail"], 60),
                ]
                for k in data["kill_switch"]
            ],
            "no kill-switch events",
        )
    )
    return out


# A number as the renderers write it: a sign or digit first, then digits, signs, . , %
_NUMERIC = re.compile(r"[+\-0-9][0-9+\-.,%]*")


def _text_table(cols: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned columns (numbers to the right: a column whose every non-empty cell is a
    number), a rule under the header. Column-wise, with the loops in C: a table of
    10,000 orders renders in a fraction of a second."""
    # each column's distinct cells (a column of 10,000 prices has a few hundred)
    columns = [set(col) for col in zip(*rows, strict=False)] if rows else [set() for _ in cols]
    widths = [max(len(c), max(map(len, col), default=0)) for c, col in zip(cols, columns, strict=False)]
    numeric = [all(map(_NUMERIC.fullmatch, filter(None, col))) for col in columns]
    # one format per table ("{:<8}   {:>5}"), so each line is one call in C
    spec = "   ".join(f"{{:{'>' if num else '<'}{w}}}" for w, num in zip(widths, numeric, strict=False))
    line = spec.format
    return [
        line(*cols).rstrip(),
        "   ".join("─" * w for w in widths),
        *(line(*r).rstrip() for r in rows),
    ]


def _render_text(data: dict[str, Any], *, color: bool = False, cells: dict[str, Any] | None = None) -> str:
    """The text rendering after its head (render_head): from the line break after it."""
    bold, plain = ("\x1b[1m", "\x1b[0m") if color else ("", "")
    lines = [""]
    for title, cols, rows, empty in _sections(data, cells):
        if not rows:
            if empty:
                lines += ["", f"{bold}{title}{plain}: {empty}"]
            continue
        lines += ["", f"{bold}{title}{plain}", *_text_table(cols, rows)]
    return "\n".join(lines) + "\n"


def _md_escape(value: str) -> str:
    return _printable(value, 200).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def _render_md(data: dict[str, Any], cells: dict[str, Any] | None = None) -> str:
    """The Markdown rendering after its head (render_head)."""
    lines: list[str] = []
    for title, cols, rows, empty in _sections(data, cells):
        if not rows and not empty:
            continue
        lines += [f"## {title}", ""]
        if not rows:
            lines += [f"_{empty}_", ""]
            continue
        lines.append("| " + " | ".join(_md_escape(c) for c in cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for r in rows:
            lines.append("| " + " | ".join(_md_escape(x) for x in r) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _render_csv(data: dict[str, Any], table: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ORDER_COLUMNS if table == "orders" else FILL_COLUMNS
    w.writerow(cols)
    for row in data[table]:
        w.writerow([_csv_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
