"""Measures libroadrunner or COPASI on one model, in one fresh process, the way
vht-bench measures OpenVHT: load (cold), one time course (median of a few),
cohort throughput on one thread, and optionally a tight-tolerance trajectory.

    python tools.py roadrunner|copasi MODEL.xml --end T --points 1001 \
        --factors FACTORS.csv --cohort N --budget SECONDS [--trajectory OUT.csv]

The cohort's parameter values come from FACTORS.csv (written by vht-bench:
a header `member,id1,id2,...` and one row of values per member), so every
tool simulates the same virtual patients. Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time


def read_factors(path):
    import numpy as np

    with open(path) as f:
        header = f.readline().strip().split(",")
    ids = header[1:]
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if data.size == 0:
        return ids, []
    return ids, [row[1:] for row in data]


def write_csv(path, names, rows):
    with open(path, "w") as f:
        f.write(",".join(["time"] + list(names)) + "\n")
        for row in rows:
            f.write(",".join(repr(float(v)) for v in row) + "\n")


class RoadRunnerTool:
    name = "roadrunner"

    @staticmethod
    def import_module():
        import roadrunner  # noqa: F401

    def __init__(self, path):
        import roadrunner

        self.rr = roadrunner.RoadRunner(path)

    def prepare(self, args):
        rr = self.rr
        m = rr.model
        self.species = list(m.getFloatingSpeciesIds()) + list(m.getBoundarySpeciesIds())
        # Concentrations, as vht-bench reports them (libroadrunner's default too).
        rr.timeCourseSelections = ["time"] + ["[%s]" % s for s in self.species]
        rr.integrator.maximum_num_steps = 500000

    def tolerances(self, rtol, atol):
        self.rr.integrator.relative_tolerance = rtol
        self.rr.integrator.absolute_tolerance = atol

    def simulate(self, args):
        self.rr.reset()
        return self.rr.simulate(0.0, args.end, args.points)

    def trajectory(self, args):
        r = self.simulate(args)
        return self.species, [list(row) for row in r]

    def restore(self):
        # reset() restores species and time but not global parameters, so a
        # parameter an event changed (Smith 2013's insulin) would stay changed
        # in the next run: resetAll() restores those too.
        self.rr.resetAll()

    def set_member(self, ids, values):
        # Back to the model's values, then the member's current values, then
        # reset() in simulate(): reset re-evaluates initial assignments with
        # the current parameter values. (Setting `init(k)` instead makes
        # libroadrunner regenerate the model: ~85 ms.)
        rr = self.rr
        rr.resetAll()
        for i, v in zip(ids, values):
            rr.setValue(i, float(v))

    def bind(self, ids):
        pass


class CopasiTool:
    name = "copasi"

    @staticmethod
    def import_module():
        import basico  # noqa: F401

    def __init__(self, path):
        import basico

        self.basico = basico
        self.dm = basico.load_model(path)

    def prepare(self, args):
        import COPASI

        self.COPASI = COPASI
        self.model = self.dm.getModel()
        task = self.dm.getTask("Time-Course")
        task.setMethodType(COPASI.CTaskEnum.Method_deterministic)
        problem = task.getProblem()
        problem.setOutputStartTime(0.0)
        problem.setDuration(float(args.end))
        problem.setStepNumber(int(args.points) - 1)
        problem.setUseValues(False)
        problem.setTimeSeriesRequested(True)
        method = task.getMethod()
        method.getParameter("Max Internal Steps").setIntValue(500000)
        self.task = task
        self.method = method
        self.initialized = False

    def tolerances(self, rtol, atol):
        self.method.getParameter("Relative Tolerance").setDblValue(float(rtol))
        self.method.getParameter("Absolute Tolerance").setDblValue(float(atol))
        self.initialized = False

    def simulate(self, args):
        if not self.initialized:
            if not self.task.initializeRaw(self.COPASI.CCopasiTask.OUTPUT_UI):
                raise RuntimeError("COPASI could not initialise the time course: " + self.messages())
            self.initialized = True
        if not self.task.processRaw(True):
            raise RuntimeError("COPASI time course failed: " + self.messages())
        return self.task.getTimeSeries()

    def messages(self):
        return self.COPASI.CCopasiMessage.getAllMessageText().replace("\n", " ")[:300]

    def trajectory(self, args):
        ts = self.simulate(args)
        names, cols = [], []
        for j in range(1, ts.getNumVariables()):
            sid = ts.getSBMLId(j, self.dm)
            if sid:
                names.append(sid)
                cols.append(j)
        rows = [
            [ts.getConcentrationData(i, 0)] + [ts.getConcentrationData(i, j) for j in cols]
            for i in range(ts.getRecordedSteps())
        ]
        return names, rows

    def restore(self):
        # processRaw(True) starts from the model's initial values: nothing to undo.
        pass

    def bind(self, ids):
        by_id = {}
        for k in range(self.model.getModelValues().size()):
            mv = self.model.getModelValue(k)
            by_id[mv.getSBMLId()] = mv
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RuntimeError("COPASI has no global quantity for %s" % missing[:5])
        self.mvs = [by_id[i] for i in ids]
        self.refs = [mv.getInitialValueReference() for mv in self.mvs]

    def set_member(self, ids, values):
        for mv, v in zip(self.mvs, values):
            mv.setInitialValue(float(v))
        # Recompute initial values that depend on the parameters (initial
        # assignments), then re-initialise the task: it keeps its own copy of
        # the initial state, and processRaw(True) starts from that copy
        # (as basico does on every run_time_course; it costs ~0.1 ms).
        self.model.updateInitialValues(self.COPASI.CCore.Framework_Concentration)
        self.initialized = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tool", choices=["roadrunner", "copasi"])
    ap.add_argument("model")
    ap.add_argument("--end", type=float, default=1000.0)
    ap.add_argument("--points", type=int, default=1001)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--factors")
    ap.add_argument("--cohort", type=int, default=0)
    ap.add_argument("--budget", type=float, default=10.0)
    ap.add_argument("--trajectory", help="write a trajectory at the tight tolerances here")
    ap.add_argument("--tight-rtol", type=float, default=1e-10)
    ap.add_argument("--tight-atol", type=float, default=1e-14)
    ap.add_argument("--normal-trajectory", help="write the single time course (normal tolerances) here")
    ap.add_argument("--member-trajectory", help="write cohort member 0's time course here")
    ap.add_argument("--tight-only", action="store_true", help="only write the tight trajectory (no timing)")
    args = ap.parse_args()

    out = {"tool": args.tool, "model": args.model, "rtol": args.rtol, "atol": args.atol}
    cls = RoadRunnerTool if args.tool == "roadrunner" else CopasiTool
    # Importing the Python package is not part of loading a model.
    cls.import_module()
    t0 = time.perf_counter()
    try:
        tool = cls(args.model)
        tool.prepare(args)
    except Exception as e:  # a tool that cannot load the model is a result, not a crash
        out["load_error"] = str(e).strip().splitlines()[0][:300] if str(e).strip() else repr(e)
        print(json.dumps(out))
        return
    out["load_compile_s"] = time.perf_counter() - t0

    if args.trajectory:
        try:
            tool.tolerances(args.tight_rtol, args.tight_atol)
            names, rows = tool.trajectory(args)
            write_csv(args.trajectory, names, rows)
        except Exception as e:
            out["tight_error"] = str(e)[:300]

    if args.tight_only:
        print(json.dumps(out))
        sys.stdout.flush()
        os._exit(0)

    tool.tolerances(args.rtol, args.atol)
    times, cpu_times, err = [], [], None
    for _ in range(max(1, args.repeats)):
        t, c = time.perf_counter(), time.process_time()
        try:
            tool.restore()
            tool.simulate(args)
        except Exception as e:
            err = str(e)[:300]
            break
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
    out["single"] = {
        "median_s": statistics.median(times) if times else None,
        "times_s": times,
        "median_cpu_s": statistics.median(cpu_times) if cpu_times else None,
        "error": err,
    }
    if args.normal_trajectory and err is None:
        tool.restore()
        names, rows = tool.trajectory(args)
        write_csv(args.normal_trajectory, names, rows)

    if args.factors and args.cohort > 0:
        ids, members = read_factors(args.factors)
        members = members[: args.cohort]
        done, failures, first_error = 0, 0, None
        try:
            tool.bind(ids)
        except Exception as e:
            out["cohort"] = {"error": str(e)[:300]}
            print(json.dumps(out))
            return
        t, c = time.perf_counter(), time.process_time()
        for m, values in enumerate(members):
            try:
                tool.set_member(ids, values)
                tool.simulate(args)
            except Exception as e:
                failures += 1
                if first_error is None:
                    first_error = "member %d: %s" % (m, str(e)[:300])
            done += 1
            if time.perf_counter() - t > args.budget:
                break
        secs = time.perf_counter() - t
        cpu_secs = time.process_time() - c
        if args.member_trajectory and members:
            try:
                tool.set_member(ids, members[0])
                names, rows = tool.trajectory(args)
                write_csv(args.member_trajectory, names, rows)
            except Exception:
                pass
        out["cohort"] = {
            "requested": args.cohort,
            "available": len(members),
            "done": done,
            "failures": failures,
            "first_error": first_error,
            "seconds": secs,
            "cpu_seconds": cpu_secs,
            "sims_per_s": done / secs if secs > 0 else None,
        }
    print(json.dumps(out))
    sys.stdout.flush()
    # COPASI's and libroadrunner's teardown can take seconds on big models: not ours to time.
    os._exit(0)


if __name__ == "__main__":
    main()
