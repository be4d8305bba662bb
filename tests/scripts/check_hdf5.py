#!/usr/bin/python3
"""Reads a wallsim --hdf5 file with h5py (no wallsim code) and checks it against the same
run's --json file. Usage: check_hdf5.py COMMAND FILE.h5 FILE.json. Prints what it checked;
exits 1 with the reason on the first mismatch."""
import json
import math
import sys

import h5py


def fail(msg):
    print("check_hdf5: " + msg)
    sys.exit(1)


def close(a, b, rel=1e-9):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def main():
    command, path, json_path = sys.argv[1:4]
    j = json.load(open(json_path))
    f = h5py.File(path, "r")
    for key in ("producer", "command", "input"):
        if key not in f.attrs:
            fail("root attribute '%s' missing" % key)
    if not f.attrs["producer"].decode().startswith("wallsim"):
        fail("producer is not wallsim")
    if command == "run":
        s = f["summary"].attrs
        if not close(s["step_time_s"], j["step_time_s"]):
            fail("summary step_time_s %r != JSON %r" % (s["step_time_s"], j["step_time_s"]))
        if not close(s["breakdown_s.compute"], j["breakdown_s"]["compute"]):
            fail("summary breakdown_s.compute differs from the JSON")
        if "cluster:" not in f.attrs["scenario"].decode():
            fail("the scenario text is not stored")
        ranks = f["ranks"][:]
        if sorted(ranks["rank"].tolist()) != list(range(len(ranks))):
            fail("ranks are not 0..n-1")
        if not close(ranks["energy_j"].sum(), j["energy"]["step_j"], 1e-9):
            fail("per-rank energy %r does not sum to the step's %r" % (ranks["energy_j"].sum(), j["energy"]["step_j"]))
        total = ranks["busy_s"] + ranks["comm_s"] + ranks["bubble_s"] + ranks["other_s"]
        if not all(close(t, j["step_time_s"], 1e-9) for t in total):
            fail("busy + comm + bubble + other is not the step time on every rank")
        tl = f["timeline"][:]
        if len(tl) == 0 or not (tl["end_s"] >= tl["start_s"]).all() or tl["start_s"].min() < 0:
            fail("timeline empty or with an event ending before it starts")
        if not close(tl["end_s"].max(), j["step_time_s"], 1e-9):
            fail("the timeline does not end with the step")
        kinds = set(k.decode() for k in tl["kind"])
        if "compute" not in kinds:
            fail("no compute in the timeline")
        links = f["links"][:]
        moved = j["bytes_moved"]["scale_up"] + j["bytes_moved"]["scale_out"]
        if links["bytes"].sum() < moved * (1 - 1e-9):
            fail("links carry less than the bytes moved")
        if not all(close(u, b / bw / j["step_time_s"]) for u, b, bw in
                   zip(links["utilization"], links["bytes"], links["bandwidth_Bps"])):
            fail("utilization is not bytes / bandwidth / step time")
        print("run: %d ranks, %d timeline events, %d links" % (len(ranks), len(tl), len(links)))
    elif command == "search":
        table = f["search"][:]
        if f["summary"].attrs["valid"] != j["valid"]:
            fail("summary valid differs from the JSON")
        for i, p in enumerate(j["plans"]):
            if not close(table["step_time_s"][i], p["step_time_s"]) or table["tp"][i] != p["parallel"]["tp"]:
                fail("plan %d differs from the JSON" % (i + 1))
        if not (table["step_time_s"][1:] >= table["step_time_s"][:-1]).all():
            fail("plans are not best first")
        print("search: %d plans" % len(table))
    elif command == "sweep":
        table = f["sweep"][:]
        if len(table) != len(j["points"]):
            fail("%d rows, %d points in the JSON" % (len(table), len(j["points"])))
        for row, p in zip(table, j["points"]):
            if "step_time_s" in p and not close(row["step_time_s"], p["step_time_s"]):
                fail("a point's step time differs from the JSON")
        print("sweep: %d points" % len(table))
    elif command == "reliability":
        s = f["summary"].attrs
        for key in ("days", "goodput", "interruptions", "checkpoint_interval_s"):
            if not close(s[key], j[key]):
                fail("summary %s differs from the JSON" % key)
        table = f["reliability"][:]
        for row in table:
            cause = row["cause"].decode()
            if not close(row["interruptions"], j["interruptions_by_cause"][cause]["mean"]):
                fail("interruptions of %s differ from the JSON" % cause)
        print("reliability: %d causes" % len(table))
    elif command == "collective":
        table = f["collective"][:]
        if len(table) != len(j["rows"]):
            fail("row count differs from the JSON")
        for row, r in zip(table, j["rows"]):
            if not close(row["busbw_Bps"], r["busbw_Bps"]) or row["algo"].decode() != r["algo"]:
                fail("a row differs from the JSON")
        links = f["links"][:]
        if not (links["utilization"] <= 1 + 1e-9).all():
            fail("a link is busier than the collective lasts")
        print("collective: %d rows, %d links" % (len(table), len(links)))
    else:
        fail("unknown command " + command)


main()
