"""The subcommands. Each asks the API, prints a table (the API's JSON with ``--json``) and returns its exit
code: 0 when all is well, 1 when the answer is bad (a destination down, a ping that failed)."""

import json
from argparse import Namespace
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

from tools.cli.api import EXIT_FAILED, EXIT_OK, CliError, MonitorApi
from tools.cli.render import Cell, age, milliseconds, short_time, table, toned, use_colour

PAGE_LIMIT = 100  # the API's largest page
DELIVERED = ("delivered", "late")


def status(api: MonitorApi, args: Namespace, out: TextIO) -> int:
    """Every destination; exit 1 when any (not removed from Stripe) is down."""
    body = api.call("GET", "/destinations")
    destinations: list[dict[str, Any]] = body.get("destinations") or []
    down = [
        d["destination_id"] for d in destinations if d.get("health") == "down" and not d.get("removed_at")
    ]
    if args.json:
        _print_json(body, out)
    elif not destinations:
        print("No destination has been checked yet (the first scheduled run or ping records it).", file=out)
    else:
        now, colour = datetime.now(UTC), use_colour(out)
        rows = [_status_row(d, now) for d in destinations]
        headers = ("DESTINATION", "HEALTH", "SINCE", "LAST CHECK", "DELIVERY", "MUTED UNTIL")
        print(table(headers, rows, colour=colour), file=out)
        troubled = [
            d for d in destinations if d.get("health") in ("degraded", "down") and not d.get("removed_at")
        ]
        if troubled:
            why = [
                [d["destination_id"], toned(d["health"]), str(d.get("health_reason") or "-")]
                for d in troubled
            ]
            print("\nWhy:\n" + _indent(table(("", "", ""), why, colour=colour).split("\n", 1)[1]), file=out)
        if down:
            print(f"\n{len(down)} of {len(destinations)} destinations down: {', '.join(down)}", file=out)
    return EXIT_FAILED if down else EXIT_OK


def ping(api: MonitorApi, args: Namespace, out: TextIO) -> int:
    """Ping now (and wait for the delivery receipt); exit 0 when Stripe accepted it (and it arrived)."""
    path = f"/destinations/{_id(args.destination_id)}/ping"
    query = {"wait": str(args.wait)} if args.wait else None
    found = api.answer("POST", path, query=query, timeout=args.wait + 20 if args.wait else 30)
    if "outcome" not in found.body:
        raise api.error("POST", path, found)
    record = found.body
    passed, verdict = _verdict(record, args.wait)
    if args.json:
        _print_json(record, out)
        return EXIT_OK if passed else EXIT_FAILED
    detail = record.get("event_id") or f"{record.get('error_code')}: {record.get('error_message')}"
    attempts = record.get("attempts")
    print(
        f"{record['destination_id']}  {record['outcome']}  HTTP {record.get('http_status') or '-'}"
        f"  {attempts} attempt{'' if attempts == 1 else 's'}  {milliseconds(record.get('latency_ms'))}"
        f"  {detail}",
        file=out,
    )
    if delivery := _delivery_line(record, args.wait):
        print(f"delivery: {delivery}", file=out)
    print(f"verdict: {'pass' if passed else 'fail'} ({verdict})", file=out)
    return EXIT_OK if passed else EXIT_FAILED


def history(api: MonitorApi, args: Namespace, out: TextIO) -> int:
    pings = _pages(api, f"/destinations/{_id(args.destination_id)}/pings", "pings", args.limit)
    if args.json:
        _print_json({"destination_id": args.destination_id, "pings": pings}, out)
        return EXIT_OK
    if not pings:
        _known_or_fail(api, args.destination_id)
        print(f"No checks of {args.destination_id} are recorded.", file=out)
        return EXIT_OK
    rows: list[list[Cell]] = [
        [
            short_time(p.get("pinged_at")),
            p.get("trigger") or "-",
            toned(p.get("outcome") or "-", "green" if p.get("outcome") == "ok" else "red"),
            str(p.get("http_status") or "-"),
            milliseconds(p.get("latency_ms")),
            _delivery_cell(p),
            p.get("event_id") or _error(p),
        ]
        for p in pings
    ]
    headers = ("PINGED AT", "TRIGGER", "OUTCOME", "HTTP", "LATENCY", "DELIVERY", "EVENT OR ERROR")
    print(table(headers, rows, colour=use_colour(out)), file=out)
    return EXIT_OK


def transitions(api: MonitorApi, args: Namespace, out: TextIO) -> int:
    found = _pages(api, f"/destinations/{_id(args.destination_id)}/transitions", "transitions", args.limit)
    if args.json:
        _print_json({"destination_id": args.destination_id, "transitions": found}, out)
        return EXIT_OK
    if not found:
        _known_or_fail(api, args.destination_id)
        print(f"{args.destination_id} has not changed health yet.", file=out)
        return EXIT_OK
    rows: list[list[Cell]] = [
        [
            short_time(t.get("at")),
            toned(t.get("from_health") or "-"),
            toned(t.get("to_health") or "-"),
            toned("yes", "cyan") if t.get("muted") else toned("-"),
            _clip(t.get("reason")),
        ]
        for t in found
    ]
    print(table(("AT", "FROM", "TO", "MUTED", "WHY"), rows, colour=use_colour(out)), file=out)
    return EXIT_OK


def mute(api: MonitorApi, args: Namespace, out: TextIO) -> int:
    until = args.until or datetime.now(UTC) + args.duration
    stamp = until.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    state = api.call("POST", f"/destinations/{_id(args.destination_id)}/mute", body={"until": stamp})
    if args.json:
        _print_json(state, out)
    else:
        muted_until = state.get("muted_until")
        print(
            f"{args.destination_id} muted until {short_time(muted_until)}"
            f" ({age(muted_until, datetime.now(UTC))}): no alerts until then; checks go on.",
            file=out,
        )
    return EXIT_OK


def unmute(api: MonitorApi, args: Namespace, out: TextIO) -> int:
    state = api.call("DELETE", f"/destinations/{_id(args.destination_id)}/mute")
    if args.json:
        _print_json(state, out)
    else:
        print(f"{args.destination_id} unmuted: its health changes are alerted again.", file=out)
    return EXIT_OK


def _status_row(destination: dict[str, Any], now: datetime) -> list[Cell]:
    last = destination.get("last_check") or {}
    health = "removed" if destination.get("removed_at") else destination.get("health") or "-"
    last_check = f"{last['outcome']}, {age(last.get('pinged_at'), now)}" if last.get("outcome") else "-"
    muted = destination.get("muted")
    until = destination.get("muted_until")
    return [
        destination["destination_id"],
        toned(health),
        age(destination.get("health_since"), now),
        toned(last_check, "green" if last.get("outcome") == "ok" else "red" if last else "dim"),
        _delivery_cell(last),
        toned(f"{short_time(until)} ({age(until, now)})", "cyan") if muted else toned("-"),
    ]


def _delivery_cell(check: dict[str, Any]) -> Cell:
    status = check.get("delivery_status")
    if not status:
        return toned("-")
    if status in DELIVERED:
        channel = f" ({check['delivery_channel']})" if check.get("delivery_channel") else ""
        return toned(f"{status} {milliseconds(check.get('delivery_latency_ms'))}{channel}", status)
    return toned(str(status))


def _delivery_line(record: dict[str, Any], wait: int | None) -> str | None:
    status = record.get("delivery_status")
    if status in DELIVERED:
        return (
            f"{status} via {record.get('delivery_channel')},"
            f" {milliseconds(record.get('delivery_latency_ms'))} after Stripe created the event"
        )
    if status == "pending":
        return f"no receipt within {wait} s (pending)" if wait else "pending (--wait N waits for the receipt)"
    if status == "unmonitored":
        return "not monitored: no receipt channel for this destination (docs/receipts.md)"
    return str(status) if status else None


def _verdict(record: dict[str, Any], wait: int | None) -> tuple[bool, str]:
    if record.get("outcome") != "ok":
        return False, f"Stripe did not accept the ping: {record.get('outcome')}"
    status = record.get("delivery_status")
    if wait and status not in (*DELIVERED, "unmonitored"):
        return False, f"accepted, but not delivered within {wait} s"
    if status in DELIVERED:
        return True, f"accepted and {status}"
    return True, "accepted by Stripe"


def _pages(api: MonitorApi, path: str, key: str, limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < limit:
        query = {"limit": str(min(PAGE_LIMIT, limit - len(found)))} | ({"cursor": cursor} if cursor else {})
        body = api.call("GET", path, query=query)
        found += body.get(key) or []
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return found


def _known_or_fail(api: MonitorApi, destination_id: str) -> None:
    """Nothing recorded: a destination the monitor knows, or a typo? Only ``status``'s list can tell."""
    known = {d.get("destination_id") for d in api.call("GET", "/destinations").get("destinations") or []}
    if destination_id not in known:
        raise CliError(
            f"unknown destination {destination_id}: the monitor has no record of it ('stripe-monitor status'"
            " lists the destinations it knows)"
        )


def _id(destination_id: str) -> str:
    return quote(destination_id, safe="")


def _error(check: dict[str, Any]) -> str:
    code, message = check.get("error_code"), check.get("error_message")
    return _clip(f"{code}: {message}" if code and message else code or message)


def _clip(text: Any, width: int = 60) -> str:
    value = str(text) if text else "-"
    return value if len(value) <= width else value[: width - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, sort_keys=False), file=out)
