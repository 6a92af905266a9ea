"""Load test of ``gensar serve``: micro-batching on vs one-at-a-time.

For each mode the server runs in its own process on 127.0.0.1 (a fresh history
store seeded from the dataset), and an asyncio httpx client with N concurrent
connections sends the same seeded mix of requests: recommendations for stored
users, personalised searches with the dataset's queries, and /events appends
(rec clicks; a query and its search click). Every request must succeed.

    .venv/bin/python benchmarks/serving_load.py                  # amazon-scientific
    .venv/bin/python benchmarks/serving_load.py --model runs/x/model --dataset data/x

Client and server share the machine: on 2 cores the client takes part of the
CPU the server would otherwise have, in both modes alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gensar.serving.launch import ServerProcess  # noqa: E402

from _common import REPO, write_results  # noqa: E402

MIX = {"recommend": 0.45, "search": 0.35, "events": 0.20}


def make_requests(dataset: Path, n: int, k: int, seed: int) -> list[tuple[str, str, dict]]:
    """The seeded request list: (kind, path, JSON body)."""
    rng = random.Random(seed)
    events = pl.read_parquet(dataset / "events.parquet", columns=["user_id"])
    users = events["user_id"].unique(maintain_order=True).to_list()
    items = pl.read_parquet(dataset / "items.parquet", columns=["item_id"])["item_id"].to_list()
    queries = pl.read_parquet(dataset / "queries.parquet")["text"].to_list()
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=n)
    out = []
    for kind in kinds:
        user = rng.choice(users)
        if kind == "recommend":
            out.append((kind, "/recommend", {"user_id": user, "k": k}))
        elif kind == "search":
            out.append((kind, "/search", {"user_id": user, "query": rng.choice(queries), "k": k}))
        elif rng.random() < 0.5:
            body = {
                "user_id": user,
                "events": [{"behaviour": "rec_item", "item_id": rng.choice(items)}],
            }
            out.append((kind, "/events", body))
        else:
            body = {
                "user_id": user,
                "events": [
                    {"behaviour": "search_query", "query": rng.choice(queries)},
                    {"behaviour": "search_item", "item_id": rng.choice(items)},
                ],
            }
            out.append((kind, "/events", body))
    return out


async def drive(url: str, requests: list, clients: int) -> dict:
    """Send ``requests`` through ``clients`` concurrent connections; latencies per kind."""
    latencies: dict[str, list[float]] = {kind: [] for kind in MIX}
    errors: list[str] = []
    queue: asyncio.Queue = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                kind, path, body = queue.get_nowait()
                start = time.perf_counter()
                try:
                    reply = await client.post(path, json=body)
                    if reply.status_code != 200:
                        errors.append(f"{path} {reply.status_code} {reply.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(f"{path} {type(err).__name__}: {err}")
                latencies[kind].append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
        health = (await client.get("/health")).json()
    return {"wall": wall, "latencies": latencies, "errors": errors, "health": health}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_mode(args, batching: bool, requests: list) -> dict:
    with tempfile.TemporaryDirectory(prefix="gensar-load-") as tmp:
        settings = [
            f"store={Path(tmp) / 'history.sqlite3'}",
            f"batching={str(batching).lower()}",
            f"threads={args.threads}",
            f"max_batch={args.max_batch}",
            f"max_wait_ms={args.max_wait_ms}",
            "log_level=warning",
        ]
        log = Path(tmp) / "server.log"
        try:
            with ServerProcess(args.model, args.dataset, settings, log_file=log) as server:
                warm = requests[: 2 * args.clients]
                asyncio.run(drive(server.url, warm, args.clients))
                server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
                result = asyncio.run(drive(server.url, requests, args.clients))
                server_cpu = cpu_seconds(server.process.pid) - server_cpu
                client_cpu = time.process_time() - client_cpu
        except Exception:
            if log.exists():
                print(log.read_text()[-3000:], file=sys.stderr)
            raise
    everything = [x for values in result["latencies"].values() for x in values]
    row = {
        "batching": batching,
        "requests": len(everything),
        "errors": len(result["errors"]),
        "error_examples": result["errors"][:5],
        "wall_s": round(result["wall"], 2),
        "rps": round(len(everything) / result["wall"], 1),
        "p50_ms": round(1000 * statistics.median(everything), 1),
        "p99_ms": round(1000 * percentile(everything, 99), 1),
        "per_kind": {
            kind: {
                "n": len(values),
                "p50_ms": round(1000 * statistics.median(values), 1) if values else None,
                "p99_ms": round(1000 * percentile(values, 99), 1) if values else None,
            }
            for kind, values in result["latencies"].items()
        },
        "batches": result["health"].get("batches", {}),
        "server_cpu_ms_per_request": round(1000 * server_cpu / len(everything), 1),
        "client_cpu_ms_per_request": round(1000 * client_cpu / len(everything), 1),
    }
    print(
        f"batching {'on ' if batching else 'off'}: {row['rps']} req/s, p50 {row['p50_ms']} ms, "
        f"p99 {row['p99_ms']} ms, {row['errors']} errors",
        flush=True,
    )
    return row


def markdown(args, rows: list[dict]) -> str:
    on = next((r for r in rows if r["batching"]), None)
    off = next((r for r in rows if not r["batching"]), None)
    lines = [
        "# Serving load",
        "",
        f"`gensar serve` on `{args.model}` (dataset `{args.dataset}`), one server process, "
        f"{args.threads} torch thread(s); {args.clients} concurrent clients (httpx async, "
        f"separate process), {args.requests} requests per mode: "
        + ", ".join(f"{int(100 * w)}% {k}" for k, w in MIX.items())
        + f", k={args.k}. Micro-batching: up to {args.max_batch} requests or "
        f"{args.max_wait_ms} ms. Client and server share a 2-core machine.",
        "",
        "| batching | requests | errors | req/s | p50 ms | p99 ms | recommend p50 / p99 | search p50 / p99 | events p50 / p99 | mean batch rec / search | server CPU ms/req | client CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        kinds = r["per_kind"]
        mean_batch = " / ".join(
            str(r["batches"].get(kind, {}).get("mean_batch", ""))
            for kind in ("recommend", "search")
        )
        lines.append(
            f"| {'on' if r['batching'] else 'off'} | {r['requests']} | {r['errors']} | {r['rps']} "
            f"| {r['p50_ms']} | {r['p99_ms']} "
            + " ".join(f"| {kinds[k]['p50_ms']} / {kinds[k]['p99_ms']}" for k in MIX)
            + f" | {mean_batch} | {r['server_cpu_ms_per_request']} | {r['client_cpu_ms_per_request']} |"
        )
    if any(r["error_examples"] for r in rows):
        lines.append("")
    for r in rows:
        for example in r["error_examples"]:
            lines.append(f"- error ({'on' if r['batching'] else 'off'}): `{example}`")
    if args.note:
        lines += ["", f"Note: {args.note}"]
    if on and off:
        lines += [
            "",
            f"Throughput with micro-batching: **{on['rps'] / off['rps']:.2f}x** one-at-a-time.",
        ]
    lines += [
        "",
        f"Reproduce: `.venv/bin/python benchmarks/serving_load.py {shlex.join(args.argv)}`".rstrip(),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=REPO / "runs" / "benchmarks" / "amazon-scientific" / "seed-0" / "gensar" / "model",
        help="a trained model directory (default: the full benchmark's GenSAR)",
    )
    parser.add_argument(
        "--dataset", type=Path, default=REPO / "runs" / "data" / "amazon-scientific"
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--modes", default="on,off", help="on,off | on | off")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="A sentence for the results file.")
    parser.add_argument("--no-write", action="store_true", help="Print only; keep results/ as is.")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    for path in (args.model, args.dataset):
        if not path.exists():
            print(
                f"error: {path} not found (train the model / prepare the dataset first)",
                file=sys.stderr,
            )
            return 2
    import torch  # only so that the results' machine line shows the server's thread count

    torch.set_num_threads(args.threads)
    requests = make_requests(args.dataset, args.requests, args.k, args.seed)
    rows = [run_mode(args, mode == "on", requests) for mode in args.modes.split(",")]
    text = markdown(args, rows)
    data = {
        "settings": {k: str(v) for k, v in vars(args).items() if k != "argv"},
        "mix": MIX,
        "modes": rows,
    }
    if args.no_write:
        print(text)
    else:
        write_results("serving_load", text, data)
    failed = sum(r["errors"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
