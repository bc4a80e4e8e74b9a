"""Side-by-side speed benchmark: OpenVHT (vht-bench) vs libroadrunner and COPASI.

Run through `bench/run` (which sets up the virtual environment and builds
vht-bench). For each model, every tool runs in its own fresh process (so its
load is cold) and measures: load+compile, one time course 0..T with 1,001
rows (median of a few), and cohort throughput on one thread. The cohort's
parameter values are written once by vht-bench and read by the other tools,
so all three simulate the same virtual patients. A trajectory at tight
tolerances from OpenVHT and libroadrunner checks that they agree.

Models whose conditions matter (PEtab problems, stimulated models) are first
written out as plain SBML with the nominal parameters and the stimulus
applied (python-libsbml), and every tool loads that same file.
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))

# The condition of each PEtab problem that is benchmarked: one with the
# stimulus on (a problem with one condition uses it). Preequilibration
# conditions are not simulated: the benchmark is one time course from t = 0.
PETAB_CONDITION = {
    "Bachmann_MSB2011": "model1_data5",  # Epo 1.25e-7, no actinomycin D
    "Brannmark_JBC2010": "Dose_10",  # insulin 10 nM
    "Bruno_JExpBot2016": "model1_data2",
    "Fujita_SciSignal2010": "condition_step_10_0",  # EGF 10 ng/mL
    "Lucarelli_CellSystems2018": "model1_data3",  # TGFb 1 (as shipped nothing moves)
    "Schwen_PONE2014": "model1_data4",  # insulin 10
    "Sneyd_PNAS2002": "Ca_dose_response__1",
    "Zheng_PNAS2012": "simCondition",
}

# Models in ../shared/models: end time and a stimulus (target -> value) where
# the model barely moves as shipped. Chen with EGF and HRG present from the
# start: 337 of 500 species move by t = 1000 (8 as shipped). Its rules also
# switch the ligands on through a steep step at t = 1800 s, which makes a run
# to 3600 s about 30 times slower in every tool, so T stays 1000. Smith 2013's
# own events re-stimulate with 499999 insulin molecules: it starts with that dose.
SHARED_MODELS = {
    "BIOMD0000000379_DallaMan2007_MealModel": {"end": 420.0},
    "model_Chen_MSB2009": {"set": {"c1": 1e-8, "c514": 1e-8}, "note": "EGF and HRG 10 nM (c1, c514)"},
    "model_Smith_BMCSystBiol2013": {"set": {"Ins": 499999.0}, "note": "insulin 499999 at t=0 (its own restimulation dose)"},
}

# A handful of SBML Test Suite cases with events (delays, priorities,
# persistence) and delay(): small models where event handling dominates.
SUITE_CASES = ["00071", "00420", "00768", "01269", "01320", "01415", "01683"]

TIGHT_RTOL = 1e-10
TIGHT_ATOL = 1e-14


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- model preparation


def materialise(src, dst, values, promote_local=True):
    """Writes `src` with `values` (id -> number) applied as plain SBML values
    (initial assignments on those ids removed) and local parameters promoted
    to global ones, so that every tool can set every kinetic parameter by id.
    Returns (path, notes); `src` itself when nothing changes."""
    import libsbml

    doc = libsbml.readSBMLFromFile(src)
    model = doc.getModel()
    if model is None:
        return src, ["libsbml could not read the model"]
    notes = []
    changed = False
    if promote_local and any(
        r.isSetKineticLaw() and r.getKineticLaw().getNumParameters() + r.getKineticLaw().getNumLocalParameters() > 0
        for r in model.getListOfReactions()
    ):
        props = libsbml.ConversionProperties()
        props.addOption("promoteLocalParameters", True)
        if doc.convert(props) != libsbml.LIBSBML_OPERATION_SUCCESS:
            notes.append("local parameters could not be promoted")
        else:
            changed = True
            notes.append("local parameters promoted to global")
        model = doc.getModel()
    for target, value in values.items():
        ia = model.getInitialAssignment(target)
        p, s, c = model.getParameter(target), model.getSpecies(target), model.getCompartment(target)
        if p is not None:
            if model.getRule(target) is not None:
                notes.append("%s is set by a rule: not overridden" % target)
                continue
            p.setValue(value)
        elif s is not None:
            if s.getHasOnlySubstanceUnits() or s.isSetInitialAmount():
                s.setInitialAmount(value)
            else:
                s.setInitialConcentration(value)
        elif c is not None:
            c.setSize(value)
        else:
            continue
        if ia is not None:
            model.removeInitialAssignment(target)
        changed = True
    if not changed:
        return src, notes
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    libsbml.writeSBMLToFile(doc, dst)
    return dst, notes


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def petab_case(folder, outdir):
    import libsbml

    name = os.path.basename(folder)
    sbml = os.path.join(folder, "model_%s.xml" % name)
    params = {}
    for row in read_tsv(os.path.join(folder, "parameters_%s.tsv" % name)):
        try:
            params[row["parameterId"]] = float(row["nominalValue"])
        except (KeyError, ValueError):
            pass
    meas_files = [f for f in os.listdir(folder) if f.startswith("measurementData") and f.endswith(".tsv")]
    times, used = [], []
    for mf in meas_files:
        for row in read_tsv(os.path.join(folder, mf)):
            try:
                t = float(row["time"])
            except ValueError:
                continue
            if math.isfinite(t):
                times.append(t)
            used.append(row["simulationConditionId"])
    end = max(times) if times and max(times) > 0 else 1000.0
    cond_id = PETAB_CONDITION.get(name) or (used[0] if used else None)
    conds = {r["conditionId"]: r for r in read_tsv(os.path.join(folder, "experimentalCondition_%s.tsv" % name))}
    model = libsbml.readSBMLFromFile(sbml).getModel()
    values = {}
    # Nominal (best-fit) parameters first, then the condition on top.
    for pid, v in params.items():
        p = model.getParameter(pid)
        if p is not None and model.getInitialAssignment(pid) is None and model.getRule(pid) is None:
            values[pid] = v
    notes = []
    cond = conds.get(cond_id, {})
    for col, raw in cond.items():
        if col in ("conditionId", "conditionName") or raw is None or raw.strip() == "":
            continue
        raw = raw.strip()
        try:
            v = float(raw)
        except ValueError:
            if raw in params:
                v = params[raw]
            elif model.getParameter(raw) is not None:
                v = model.getParameter(raw).getValue()
            else:
                notes.append("condition value %s=%s not resolved" % (col, raw))
                continue
        if math.isnan(v):
            continue
        values[col] = v
    path, more = materialise(sbml, os.path.join(outdir, "models", name + ".xml"), values)
    note = "condition %s" % cond_id if len(conds) > 1 else ""
    return {
        "name": name,
        "group": "petab",
        "path": path,
        "end": end,
        "note": "; ".join(x for x in [note] + notes + more if x),
    }


def shared_model_case(path, outdir):
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = SHARED_MODELS.get(stem, {})
    values = spec.get("set", {})
    out, notes = materialise(path, os.path.join(outdir, "models", stem + ".xml"), values)
    return {
        "name": stem,
        "group": "models",
        "path": out,
        "end": spec.get("end", 1000.0),
        "note": "; ".join(x for x in [spec.get("note", "")] + notes if x),
    }


def suite_case(suite, case, outdir):
    folder = os.path.join(suite, case)
    settings = {}
    with open(os.path.join(folder, "%s-settings.txt" % case)) as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                settings[k.strip()] = v.strip()
    src = None
    for lv in ("l3v2", "l3v1", "l2v5", "l2v4"):
        p = os.path.join(folder, "%s-sbml-%s.xml" % (case, lv))
        if os.path.exists(p):
            src = p
            break
    if src is None:
        return None
    path, notes = materialise(src, os.path.join(outdir, "models", "suite-%s.xml" % case), {})
    with open(os.path.join(folder, "%s-model.m" % case)) as f:
        tags = [l.split(":", 1)[1].strip() for l in f if l.startswith("componentTags")]
    keep = [t.strip() for t in (tags[0] if tags else "").split(",") if "Event" in t or "Delay" in t]
    return {
        "name": "suite %s" % case,
        "group": "suite",
        "path": path,
        "end": float(settings.get("duration", "10")),
        "note": "; ".join([", ".join(keep)] + notes),
    }


def discover(args, outdir):
    cases = []
    if args.folders:
        for folder in args.folders:
            for f in sorted(os.listdir(folder)):
                if f.endswith(".xml"):
                    cases.append(shared_model_case(os.path.join(folder, f), outdir))
        return cases
    models = os.path.join(SHARED, "models")
    for f in sorted(os.listdir(models)):
        if f.endswith(".xml"):
            cases.append(shared_model_case(os.path.join(models, f), outdir))
    petab = os.path.join(SHARED, "petab")
    for d in sorted(os.listdir(petab)):
        if os.path.isdir(os.path.join(petab, d)):
            cases.append(petab_case(os.path.join(petab, d), outdir))
    suite = os.path.join(SHARED, "sbml-test-suite", "semantic")
    if os.path.isdir(suite):
        for c in SUITE_CASES:
            case = suite_case(suite, c, outdir)
            if case:
                cases.append(case)
    return cases


QUICK = {
    "BIOMD0000000010",
    "BIOMD0000000012",
    "model_Lang_PLOSComputBiol2024",
    "Boehm_JProteomeRes2014",
    "Lucarelli_CellSystems2018",
    "suite 00071",
    "suite 01320",
}


# ---------------------------------------------------------------- running the tools


def run_json(cmd, timeout):
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"process_error": "timed out after %.0f s" % timeout}
    wall = time.perf_counter() - t
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        return {"process_error": err[:300], "process_s": wall}
    out = json.loads(lines[-1])
    out["process_s"] = wall
    return out


def read_traj(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return None
    names = rows[0][1:]
    data = [[float(x) for x in r] for r in rows[1:]]
    return names, data


def max_rel_diff(a, b, atol):
    """The largest |a - b| / |b| over the species both report, ignoring
    entries where the reference is below the noise floor
    max(1e-6 * the column's largest value, 1e3 * atol): relative differences
    of values that are numerically zero mean nothing."""
    if a is None or b is None:
        return None, None
    (na, da), (nb, db) = a, b
    if len(da) != len(db):
        return None, "row counts differ (%d vs %d)" % (len(da), len(db))
    worst, where = 0.0, None
    for j, name in enumerate(nb):
        if name not in na:
            continue
        i_a = na.index(name) + 1
        col_b = [r[j + 1] for r in db]
        floor = max(1e-6 * max(abs(x) for x in col_b), 1e3 * atol)
        for i, rb in enumerate(db):
            vb, va = rb[j + 1], da[i][i_a]
            if not math.isfinite(va):
                return float("inf"), "%s at t=%g is %r" % (name, rb[0], va)
            if abs(vb) < floor:
                continue
            d = abs(va - vb) / abs(vb)
            if d > worst:
                worst, where = d, "%s at t=%g" % (name, rb[0])
    return worst, where


def bench_case(case, args, vht, outdir):
    name = case["name"]
    work = os.path.join(outdir, "work", name.replace(" ", "_"))
    # Files of an earlier run must not stand in for a tool that fails now.
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    T = case["end"]
    common = ["--end", repr(T), "--points", "1001"]
    factors = os.path.join(work, "factors.csv")
    res = {"case": case}

    # OpenVHT: first the tight trajectory (and the number of kinetic
    # parameters), then the timed run in a fresh process.
    tight_vht = os.path.join(work, "vht_tight.csv")
    res["vht_tight"] = run_json(
        [vht, case["path"], *common, "--rtol", repr(TIGHT_RTOL), "--atol", repr(TIGHT_ATOL), "--repeats", "1",
         "--trajectory", tight_vht, "--run-timeout", "120", "--json"],
        timeout=300,
    )
    k = len(res["vht_tight"].get("kinetic", [])) or 1
    # The slower tools read at most this many members (a text file of
    # 10,000 x 300 values would take longer to parse than to simulate).
    n_factors = min(args.cohort, max(200, 300000 // k))
    res["vht"] = run_json(
        [vht, case["path"], *common, "--rtol", repr(args.rtol), "--atol", repr(args.atol),
         "--cohort", str(args.cohort), "--sigma", "0.1", "--seed", str(args.seed), "--budget", repr(args.vht_budget),
         "--factors-out", factors, "--factors-count", str(n_factors),
         "--member-trajectory", os.path.join(work, "vht_member0.csv"), "--json"],
        timeout=args.vht_budget + 600,
    )
    for tool in ("roadrunner", "copasi"):
        script = [sys.executable, os.path.join(HERE, "tools.py"), tool, case["path"], *common]
        # The tight trajectory in its own process and with its own time limit:
        # at rtol 1e-10 a reference tool can crawl (libroadrunner on Chen's
        # step), and that must not cost the timing results.
        # Only libroadrunner's tight trajectory is the reference: COPASI's can
        # take minutes on the big models, and where we compared them by hand
        # (Lucarelli, Smith 2013, Dalla Man) the two agree to 1.6e-6.
        if tool == "roadrunner":
            res[tool + "_tight"] = run_json(
                script + ["--trajectory", os.path.join(work, tool + "_tight.csv"), "--tight-rtol", repr(TIGHT_RTOL),
                          "--tight-atol", repr(TIGHT_ATOL), "--tight-only"],
                timeout=args.tight_timeout,
            )
        timing = ["--rtol", repr(args.rtol), "--atol", repr(args.atol)]
        if os.path.exists(factors):
            timing += ["--factors", factors, "--cohort", str(args.cohort), "--budget", repr(args.budget),
                       "--normal-trajectory", os.path.join(work, tool + ".csv"),
                       "--member-trajectory", os.path.join(work, tool + "_member0.csv")]
        res[tool] = run_json(script + timing, timeout=args.budget + args.tight_timeout + 300)
    d, where = max_rel_diff(read_traj(tight_vht), read_traj(os.path.join(work, "roadrunner_tight.csv")), TIGHT_ATOL)
    res["diff_rr"] = {"max_rel": d, "where": where}
    # Cohort member 0 at the benchmark's tolerances: a check that every tool
    # applied the same parameter values (differences of order rtol expected).
    for tool in ("roadrunner", "copasi"):
        d, where = max_rel_diff(read_traj(os.path.join(work, "vht_member0.csv")),
                                read_traj(os.path.join(work, tool + "_member0.csv")), args.atol)
        res["member0_" + tool] = {"max_rel": d, "where": where}
    return res


# ---------------------------------------------------------------- the table


def g(d, *path):
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d


def fmt(x, kind):
    if x is None:
        return "–"
    if kind == "s":
        return "%.3g" % x
    if kind == "ms":
        return "%.3g" % (x * 1e3)
    if kind == "rate":
        return "%.3g" % x if x < 1000 else "{:,.0f}".format(x)
    if kind == "ratio":
        return "%.2g" % x if x < 10 else "%.0f" % x
    if kind == "diff":
        return "0" if x == 0 else "%.1e" % x
    if kind == "n":
        return "{:,.0f}".format(x)
    return str(x)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def failed(r):
    """Why a tool gave no numbers for a model, shortly."""
    for key in ("process_error", "load_error"):
        if g(r, key):
            return g(r, key)
    if g(r, "single", "error"):
        return g(r, "single", "error")
    return None


def rate(r):
    """Cohort rate per second of the tool's CPU time (see "What is measured"), counting only
    members that ran to the end; per second of wall time where CPU time is missing."""
    c = g(r, "cohort")
    return ok_per_s(c, c.get("cpu_seconds") or c.get("seconds")) if c else None


def ok_per_s(c, secs):
    """Members of cohort report `c` that ran to the end, per second of `secs`."""
    if not c.get("done") or not secs:
        return None
    ok = c["done"] - (c.get("failures") or 0)
    return ok / secs if ok > 0 else None


def single_s(r):
    """One simulation's median CPU time (wall time where CPU time is missing)."""
    if failed(r):
        return None
    return g(r, "single", "median_cpu_s") or g(r, "single", "median_s")


def parallel_rate(r):
    """vht's cohort rate on its parallel runner (vht-bench --threads), successful members only."""
    c = g(r, "cohort_parallel")
    return ok_per_s(c, c.get("seconds")) if c else None


def table(results):
    head = (
        "| model | species | T | load vht / rr / cp (s) | 1 sim vht / rr / cp (ms) | cohort vht / rr / cp (sims/s) "
        "| cohort × rr | cohort × cp | 1 sim × rr | load × rr | max rel diff vs rr | vht cohort, 2 threads (sims/s, wall) |\n"
        "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for res in results:
        c, v, rr, cp = res["case"], res["vht"], res["roadrunner"], res["copasi"]
        load = " / ".join(fmt(g(x, "load_compile_s"), "s") for x in (v, rr, cp))
        single = " / ".join(fmt(single_s(x), "ms") for x in (v, rr, cp))
        rates = [rate(x) for x in (v, rr, cp)]
        cohort = " / ".join(fmt(x, "rate") for x in rates)
        vs, rs = single_s(v), single_s(rr)
        diff = g(res, "diff_rr", "max_rel")
        lines.append(
            "| %s | %s | %g | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
            % (
                c["name"],
                fmt(g(res, "vht_tight", "n_species") or g(v, "n_species"), "n"),
                c["end"],
                load,
                single,
                cohort,
                fmt(ratio(rates[0], rates[1]), "ratio"),
                fmt(ratio(rates[0], rates[2]), "ratio"),
                fmt(ratio(rs, vs), "ratio"),
                fmt(ratio(g(rr, "load_compile_s"), g(v, "load_compile_s")), "ratio"),
                fmt(diff, "diff"),
                fmt(parallel_rate(v), "rate"),
            )
        )
    return head + "\n".join(lines) + "\n"


def work_table(results):
    head = (
        "| model | kinetic params | vht steps | rhs | jac / jac-vec | LU | rhs / jac eval (µs) | model evals / set-up / outputs (% of 1 sim) "
        "| vht cohort failures | rr / cp cohort runs (failures) | worst diff at | member 0 vs rr / cp | notes |\n"
        "|---|---:|---:|---:|---:|---:|---|---|---:|---|---|---|---|\n"
    )
    lines = []
    for res in results:
        c, v = res["case"], res["vht"]
        st = g(v, "single", "stats") or {}
        runs = []
        for t in ("roadrunner", "copasi"):
            co = g(res, t, "cohort") or {}
            runs.append("%s (%s)" % (fmt(co.get("done"), "n"), fmt(co.get("failures"), "n")))
        notes = [c.get("note", "")]
        for t, label in (("vht", "vht"), ("roadrunner", "rr"), ("copasi", "cp")):
            why = failed(res[t])
            if why:
                notes.append("%s: %s" % (label, why[:120]))
            why = failed(res.get(t + "_tight"))
            if why:
                notes.append("%s tight: %s" % (label, why[:100]))
            fe = g(res, t, "cohort", "first_error")
            if fe:
                notes.append("%s cohort: %s" % (label, fe[:100]))
        bd = g(v, "single", "breakdown") or {}
        one = g(v, "single", "median_s")
        evals, shares = "–", "–"
        if bd and one and st:
            evals = "%.2g / %.2g" % (bd["rhs_eval_s"] * 1e6, bd["jac_eval_s"] * 1e6)
            # Whole Jacobians where the model gives them, else one per LU (the products are in rhs-like work).
            jacs = st.get("jac_evals") or st["lu_factorisations"]
            model = st["rhs_evals"] * bd["rhs_eval_s"] + jacs * bd["jac_eval_s"]
            outputs = max(0.0, one - (bd.get("two_rows_s") or one))
            shares = "%.0f / %.0f / %.0f" % (100 * model / one, 100 * (bd.get("setup_s") or 0) / one, 100 * outputs / one)
        lines.append(
            "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
            % (
                c["name"],
                fmt(len(g(v, "kinetic") or []), "n"),
                fmt(st.get("steps"), "n"),
                fmt(st.get("rhs_evals"), "n"),
                "%s / %s" % (fmt(st.get("jac_evals"), "n"), fmt(st.get("jac_mul_evals"), "n")),
                fmt(st.get("lu_factorisations"), "n"),
                evals,
                shares,
                fmt(g(v, "cohort", "failures"), "n"),
                " / ".join(runs),
                g(res, "diff_rr", "where") or "",
                " / ".join(fmt(g(res, "member0_" + t, "max_rel"), "diff") for t in ("roadrunner", "copasi")),
                "; ".join(n for n in notes if n).replace("|", "/"),
            )
        )
    return head + "\n".join(lines) + "\n"


def targets(results):
    """Where the targets of issue 3 are missed, one line per miss."""
    misses = []
    for res in results:
        name, v, rr, cp = res["case"]["name"], res["vht"], res["roadrunner"], res["copasi"]
        rv, rrr, rcp = rate(v), rate(rr), rate(cp)
        if rv is None:
            misses.append("%s: vht has no cohort rate (%s)" % (name, failed(v) or "cohort failed"))
            continue
        if rrr and rv < 3 * rrr:
            misses.append("%s: cohort %.2g× libroadrunner (target 3×)" % (name, rv / rrr))
        if rcp and rv < rcp:
            misses.append("%s: cohort %.2g× COPASI (target 1×)" % (name, rv / rcp))
        vs, rs = single_s(v), single_s(rr)
        if vs and rs and rs / vs < 2:
            misses.append("%s: one simulation %.2g× libroadrunner (target 2×)" % (name, rs / vs))
        vl, rl = g(v, "load_compile_s"), g(rr, "load_compile_s")
        if vl and rl and vl > rl:
            misses.append("%s: load+compile %.3g s vs libroadrunner %.3g s" % (name, vl, rl))
        d = g(res, "diff_rr", "max_rel")
        if d is not None and d > 1e-6:
            misses.append("%s: differs from libroadrunner by %.1e (%s)" % (name, d, g(res, "diff_rr", "where")))
    return misses


def machine():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, %s" % (cpu, os.cpu_count() or 0, platform.platform())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", help="folders of SBML files (default: ../shared models, PEtab, suite cases)")
    ap.add_argument("--quick", action="store_true", help="fewer models and cohort runs (CI)")
    ap.add_argument("--cohort", type=int, help="cohort size (default 10,000; --quick 500)")
    ap.add_argument("--budget", type=float, help="seconds of cohort per reference tool and model (default 8; --quick 1)")
    ap.add_argument("--vht-budget", type=float, help="seconds of cohort for vht per model (default 60; --quick 5)")
    ap.add_argument("--tight-timeout", type=float, default=120.0,
                    help="seconds allowed for libroadrunner's tight-tolerance trajectory (default 120)")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-12)
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--only", help="comma-separated model names to run")
    ap.add_argument("--vht", default=os.path.join(ROOT, "target", "release", "vht-bench"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    args.cohort = args.cohort or (500 if args.quick else 10000)
    args.budget = args.budget or (1.0 if args.quick else 8.0)
    args.vht_budget = args.vht_budget or (5.0 if args.quick else 60.0)

    os.makedirs(args.out, exist_ok=True)
    cases = discover(args, args.out)
    if args.quick and not args.folders:
        cases = [c for c in cases if c["name"] in QUICK]
    if args.only:
        only = set(args.only.split(","))
        cases = [c for c in cases if c["name"] in only]
    started = time.time()
    load_before = os.getloadavg()
    results = []
    for case in cases:
        t = time.perf_counter()
        log("== %s (T=%g) %s" % (case["name"], case["end"], case.get("note", "")))
        res = bench_case(case, args, args.vht, args.out)
        results.append(res)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        log(
            "   cohort sims/s vht %s, rr %s, cp %s; max rel diff vs rr %s (%.0f s)"
            % (
                fmt(rate(res["vht"]), "rate"),
                fmt(rate(res["roadrunner"]), "rate"),
                fmt(rate(res["copasi"]), "rate"),
                fmt(g(res, "diff_rr", "max_rel"), "diff"),
                time.perf_counter() - t,
            )
        )
    load_after = os.getloadavg()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    import roadrunner
    import COPASI

    header = (
        "Measured %s UTC on %s; load average %.2f before, %.2f after; %.0f s in all.\n"
        "libroadrunner %s, COPASI %s; cohort %d for vht (at most %.0f s), reference tools %.0f s each; "
        "rtol %g, atol %g; correctness at rtol %g, atol %g; seed %d.\n"
        % (
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            machine(),
            load_before[0],
            load_after[0],
            time.time() - started,
            roadrunner.__version__,
            COPASI.__version__ if hasattr(COPASI, "__version__") else "?",
            args.cohort,
            args.vht_budget,
            args.budget,
            args.rtol,
            args.atol,
            TIGHT_RTOL,
            TIGHT_ATOL,
            args.seed,
        )
    )
    misses = targets(results)
    text = (
        header
        + "\n"
        + table(results)
        + "\n"
        + work_table(results)
        + "\nTargets of issue 3 missed:\n"
        + ("\n".join("- " + m for m in misses) if misses else "- none")
        + "\n"
    )
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.reconfigure(encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
