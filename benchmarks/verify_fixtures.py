"""`ktdiff compare --verify` on every fixture pair, as a user runs it: the verdict, the numeric check's
status, max relative difference, first divergent row and what explains it, wall time and the peak
memory of the workers. Prints a Markdown table; asserts nothing (`make acceptance`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import fixture_pairs  # noqa: E402  (the same list of pairs the tests load)

RUN = ("import json, resource, subprocess, sys; done = subprocess.run([sys.executable, '-m', 'ktdiff.cli.main', "
       "*sys.argv[1:]], capture_output=True, text=True); print(json.dumps({'rc': done.returncode, 'out': done.stdout, "
       "'err': done.stderr[-400:], 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def main() -> None:
    only = sys.argv[1:]
    env = dict(os.environ, NO_COLOR="1")
    print("| pair | exit | verdict | check | max rel | first divergent row | explained by | time | peak MiB |")
    print("|---|---:|---|---|---:|---|---|---:|---:|")
    for keras, spec in fixture_pairs():
        if only and not any(o in spec or o in keras for o in only):
            continue
        path = spec if spec.startswith("fixtures/") else f"fixtures/{spec}"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RUN, "compare", f"fixtures/models/{keras}", path, "--verify",
                               "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True)
        took = time.perf_counter() - start
        res = json.loads(done.stdout)
        name = f"{keras.removesuffix('.keras')} ↔ {spec.rpartition(':')[2]}"
        try:
            data = json.loads(res["out"])
        except ValueError:
            print(f"| {name} | {res['rc']} | error: {re.sub(r'[|]', '/', res['err'].strip()[:80])} | | | | | "
                  f"{took:.1f} s | {res['rss'] / 1024:.0f} |")
            continue
        v = data["verification"]
        first = v.get("first_divergent_row")
        where = ""
        if first is not None:
            row = data["rows"][first]
            where = f"{first} ({(row['keras'] or {}).get('id', '—')})"
        codes = ", ".join(v.get("attributed_to") or []) or ("UNX003" if first is not None and
                                                             any(f["code"] == "UNX003" for f in data["findings"]) else "")
        rel = v.get("max_rel_diff")
        print(f"| {name} | {data['exit_code']} | {data['verdict']} | {v['status']} | "
              f"{'' if rel is None else f'{rel:.1e}'} | {where} | {codes} | {took:.1f} s | {res['rss'] / 1024:.0f} |")


if __name__ == "__main__":
    main()
