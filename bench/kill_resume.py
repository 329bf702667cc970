"""Kill-and-resume campaign: kill `lskd train` / `lskd distill` / a fused sweep
`lskd distill --T 1 4 64` / `lskd nmt-train` / `lskd nmt-distill` (fairseq) at seeded
random moments, rerun the same command until it finishes, compare with an
uninterrupted run.

The pytest version (tests/test_kill_resume.py) forks warm processes to stay within a
minute; this one, by default, starts every attempt as a fresh `python -m lskd.cli.main`
process, exactly as Snakemake does, and can run many more kill points. Prints one line
per kill and a summary; exit status 1 if any resumed run differs.

  python bench/kill_resume.py --kills 15 --seed 0               # real processes
  python bench/kill_resume.py --kills 50 --launcher fork --epochs 8
  python bench/kill_resume.py --kills 4 --jobs nmt_teacher,nmt_student
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
# The jobs and harness are the tests' (tests/test_kill_resume.py): they need pytest,
# which the demo set-up does not install.
NEEDS = (
    "bench/kill_resume.py: needs pytest (the test set-up): bash scripts/setup.sh "
    "--test, or .venv/bin/pip install -c constraints.txt pytest"
)
EPOCHS = 6  # test_kill_resume.HP["epochs"] (checked in main)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=15, help="kill points per job")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--launcher", choices=["exec", "fork"], default="exec")
    p.add_argument("--epochs", type=int, default=EPOCHS, help="epochs per run")
    p.add_argument(
        "--jobs",
        default="teacher,student,fused",
        help="comma-separated jobs (also nmt_teacher, nmt_student)",
    )
    p.add_argument("--work", type=Path, help="keep the runs here (default: temp)")
    args = p.parse_args()
    sys.path.insert(0, str(TESTS))
    try:
        import pytest  # noqa: F401
    except ImportError:
        sys.exit(NEEDS)
    from conftest import make_toy_npz
    from killharness import ExecLauncher, ForkLauncher, kill_chain, run_baseline
    from test_kill_resume import HP, image_jobs, nmt_jobs, prepare_nmt

    assert HP["epochs"] == EPOCHS, "keep EPOCHS equal to test_kill_resume.HP"
    HP["epochs"] = args.epochs
    work = args.work or Path(tempfile.mkdtemp(prefix="lskd-kills-"))
    work.mkdir(parents=True, exist_ok=True)
    names = args.jobs.split(",")
    nmt = any(n.startswith("nmt_") for n in names)
    launcher = ExecLauncher() if args.launcher == "exec" else ForkLauncher(nmt=nmt)
    if args.launcher == "fork":
        launcher.warm(work / "warm.log")
    start = time.perf_counter()
    jobs, teachers = {}, {}
    if any(not n.startswith("nmt_") for n in names):
        data = make_toy_npz(work / "toy.npz", 2000, 200)
        teacher_out, teacher_wall = run_baseline(
            image_jobs(data, Path("-"))["teacher"], launcher, work
        )
        jobs |= image_jobs(data, teacher_out / "model.pt")
        teachers["teacher"] = teacher_out, teacher_wall
    if nmt:
        data = prepare_nmt(work)
        nmt_out, nmt_wall = run_baseline(
            nmt_jobs(data, Path("-"))["nmt_teacher"], launcher, work
        )
        jobs |= nmt_jobs(data, nmt_out / "model.pt")
        teachers["nmt_teacher"] = nmt_out, nmt_wall
    total = Counter()
    for i, name in enumerate(names):
        job = jobs[name]
        if name in teachers:
            baseline, wall = teachers[name]
        else:
            baseline, wall = run_baseline(job, launcher, work)
        report = kill_chain(
            job, launcher, work, baseline, wall, args.kills, args.seed + i
        )
        for a in report.attempts:
            if a.killed:
                print(
                    f"{name} chain {a.chain}: {a.signal} after {a.kill_after:.2f} s "
                    f"-> exit {a.exit_code}; had resumed from {a.resumed_from or '-'}"
                )
        killed = [a for a in report.attempts if a.killed]
        total.update(
            kills=len(killed),
            term=sum(a.signal == "SIGTERM" for a in killed),
            exit75=sum(a.exit_code == 75 for a in killed),
            resumed=sum(bool(a.resumed_from) for a in report.attempts),
            mid_epoch=sum("steps" in (a.resumed_from or "") for a in report.attempts),
            runs=len(report.identical) + len(report.different),
            identical=len(report.identical),
        )
        mid = sum("steps" in (a.resumed_from or "") for a in report.attempts)
        runs = report.identical + report.different
        print(
            f"{name}: baseline {wall:.1f} s; {len(killed)} kill points "
            f"({sum(a.exit_code == 75 for a in killed)} exited 75), {mid} mid-epoch "
            f"resumes, {len(report.identical)}/{len(runs)} finished runs identical; "
            f"{runs}"
        )
    print(
        f"summary: {total['kills']} kill points ({total['term']} SIGTERM, "
        f"{total['exit75']} of them exited 75 after saving), {total['resumed']} "
        f"starts resumed from a checkpoint ({total['mid_epoch']} mid-epoch), "
        f"{total['identical']}/{total['runs']} finished runs identical to the "
        f"uninterrupted one; {time.perf_counter() - start:.0f} s; work dir {work}"
    )
    return 0 if total["identical"] == total["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
