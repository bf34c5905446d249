"""``make bench``: the settings of a run, and what its modules share."""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
STRIPE_KEY = "sk_test_BenchKeyNotARealKey000000000000000001"


@dataclass
class Settings:
    build_dir: Path
    build: bool
    cold_runs: int
    warm_requests: int
    destinations: int
    latency_ms: float
    warm_latency_ms: float
    fanout_latency_ms: float
    workers: int
    rate: float
    tracing: bool  # the functions' X-Ray tracing (the template's Tracing: Active)
    fanout_runs: int
    peer_fanout_runs: int
    out: Path
