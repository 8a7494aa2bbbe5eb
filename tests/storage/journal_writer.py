"""A stand-in order manager for the crash test: resumes the id sequence from the journal, then
journals orders (and a fill for every other one) as fast as it can, printing each id once its
append has returned. The test kills it with SIGKILL at a random moment."""

from __future__ import annotations

import sys
from pathlib import Path

from omnid.model import Fill, Order, Side
from omnid.storage.journal import Journal, replay


def main(path: str, fsync: str) -> None:
    j = Journal(Path(path), fsync=fsync)  # type: ignore[arg-type]
    seq = replay(j.recovered.records).last_seq
    while True:
        seq += 1
        cid = f"s1-{seq:08d}"
        j.append(Order(client_order_id=cid, instrument_id="X.SIM", strategy_id="s1", side=Side.BUY,
                       qty=1.0, reason="x" * (seq % 300), ts_created=seq, ts_last=seq))
        if seq % 2 == 0:
            j.append(Fill(fill_id=f"f{seq}", client_order_id=cid, instrument_id="X.SIM",
                          strategy_id="s1", side=Side.BUY, qty=1.0, price=10.0, ts_event=seq))
        sys.stdout.write(f"{cid}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
