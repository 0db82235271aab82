"""SLURM execution: the profile in profiles/slurm against a real single-node cluster.

The cluster (Debian's slurm-wlm 22.05 + munge, two partitions ci-gpu/ci-cpu on one
node with two fake A6000s) is installed and started by tests/slurm/cluster-up.sh and
torn down by cluster-down.sh, even when a test fails. That needs root; elsewhere the
cluster tests skip with the reason. `pytest -m slurm` runs exactly this file.

What is checked, from what SLURM itself recorded (`scontrol show job`, kept MinJobAge =
300 s; the jobcomp file) and from the sbatch lines the executor plugin logs:
the GPU rules (those with a `gpu` resource in the config) go to the GPU partition with
an A6000 request, every other rule to the CPU partition with no GPU; account, time
limit, CPUs per task and --requeue are as configured; the target's output exists.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "tests" / "slurm"
CLUSTER_DIR = Path(os.environ.get("DNATOK_SLURM_CI_DIR", "/tmp/dnatok-slurm-ci"))
DEMO = REPO / "config" / "demo.yaml"
SMALL = HERE / "small.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
# what the CI cluster calls things, given to the profile the way any user would
CI_SETTINGS = {
    "DNATOK_SLURM_ACCOUNT": "dnatok-ci",
    "DNATOK_SLURM_GPU_PARTITION": "ci-gpu",
    "DNATOK_SLURM_CPU_PARTITION": "ci-cpu",
}
STUDY_DEFAULT = "soc-gpu-np"  # account and both partitions when nothing is set


def _env(**extra) -> dict:
    """The test's environment without any DNATOK_SLURM_* setting of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNATOK_SLURM_")}
    env.pop("SLURM_CONF", None)
    env.update(extra)
    return env


def _demo_config() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _config_resource(conf: dict, rule: str, key: str):
    """A rule's resource as the config declares it (the rule's entry, else the default)."""
    res = conf["resources"]
    return res.get(rule, {}).get(key, res["default"].get(key))


def _gpu_rules(conf: dict) -> set[str]:
    return {rule for rule, spec in conf["resources"].items() if spec.get("gpu")}


# ---------------------------------------------------------------- cluster
def _down(directory: Path) -> None:
    subprocess.run([str(HERE / "cluster-down.sh"), str(directory)], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the SLURM cluster test needs root: it installs slurmctld, slurmd, slurm-client "
                    "and munge with apt-get and starts them")
    try:
        proc = subprocess.run([str(HERE / "cluster-up.sh"), str(CLUSTER_DIR)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        _down(CLUSTER_DIR)
        pytest.fail("cluster-up.sh did not finish within 15 minutes")
    if proc.returncode == 3:  # this machine cannot host the cluster (see cluster-up.sh)
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        _down(CLUSTER_DIR)
        pytest.fail(f"cluster-up.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    try:
        yield CLUSTER_DIR
    finally:
        _down(CLUSTER_DIR)


def _slurm(*args, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=_env())


def _job(jobid: str) -> dict[str, str]:
    """`scontrol show job` as a dict (one-line output: KEY=VALUE separated by spaces)."""
    proc = _slurm("scontrol", "show", "job", "-o", jobid)
    assert proc.returncode == 0, f"scontrol show job {jobid}: {proc.stderr}"
    return dict(re.findall(r"(\S+?)=(\S*)", proc.stdout))


def _wait(jobid: str, limit: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        info = _job(jobid)
        if info["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return info
        time.sleep(0.5)
    _slurm("scancel", jobid)
    pytest.fail(f"SLURM job {jobid} did not finish within {limit} s: {_job(jobid)}")


def _minutes(limit: str) -> int:
    """SLURM's [D-]HH:MM:SS as minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def _gpu_request(info: dict[str, str]) -> str:
    return info.get("TresPerNode", "") + " " + info.get("TresPerJob", "")


def test_cluster_takes_the_studys_gpu_request(cluster, tmp_path):
    """Smoke test of the cluster alone: the study's own sbatch line works there."""
    out = tmp_path / "gpu.out"
    gpu = _slurm("sbatch", "--parsable", "-p", "ci-gpu", "--gres=gpu:a6000:1", "--cpus-per-task=2",
                 "--mem=1000", "-t", "5", "-o", str(out), "--wrap", "echo GPU=$CUDA_VISIBLE_DEVICES; hostname")
    cpu = _slurm("sbatch", "--parsable", "-p", "ci-cpu", "--mem=500", "-t", "5", "-o", str(tmp_path / "cpu.out"),
                 "--wrap", "true")
    assert gpu.returncode == 0 and cpu.returncode == 0, gpu.stderr + cpu.stderr
    gpu_info, cpu_info = _wait(gpu.stdout.strip()), _wait(cpu.stdout.strip())
    assert gpu_info["JobState"] == cpu_info["JobState"] == "COMPLETED"
    assert gpu_info["Partition"] == "ci-gpu" and "gres:gpu:a6000:1" in _gpu_request(gpu_info)
    assert cpu_info["Partition"] == "ci-cpu" and "gpu" not in _gpu_request(cpu_info)
    assert out.read_text().startswith("GPU=0\n")  # SLURM handed the job its (fake) GPU
    # --gres=gpu plus --gpus is refused: the reason the profile requests the GPU model
    # through gpu_model (--gpus=a6000:1) and never adds a gres next to the rules' gpu=1
    mixed = _slurm("sbatch", "--parsable", "-p", "ci-gpu", "--gres=gpu:a6000:1", "--gpus=1", "--wrap", "true")
    assert mixed.returncode != 0 and "gres" in mixed.stderr.lower()


# ---------------------------------------------------------------- profile resolution (dry runs)
def _dry_run_resources(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of each job a dry run lists."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", output):
        rule = re.match(r"rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and res:
            jobs.append((rule.group(1), dict(kv.split("=", 1) for kv in res.group(1).split(", "))))
    return jobs


def _check_mapping(jobs, gpu_rules, account, gpu_partition, cpu_partition, gpu_model="a6000"):
    rules = {rule for rule, _ in jobs}
    assert rules >= gpu_rules and rules - gpu_rules - {"all"}, rules  # both kinds are present
    for rule, res in jobs:
        if rule == "all":  # runs no command, so nothing is submitted for it
            continue
        assert res.get("slurm_account") == account, (rule, res)
        if rule in gpu_rules:
            assert res["gpu"] == "1" and res["slurm_partition"] == gpu_partition, (rule, res)
            assert res.get("gpu_model") == gpu_model and "gres" not in res, (rule, res)
        else:
            assert res.get("slurm_partition") == cpu_partition, (rule, res)
            assert "gpu" not in res and "gpu_model" not in res and "gres" not in res, (rule, res)


def test_profile_found_by_bare_name_after_make_profile_link(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    env = _env(HOME=str(home))
    env.pop("XDG_CONFIG_HOME", None)
    link = subprocess.run(["make", "-C", str(REPO), "profile-link"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert link.returncode == 0, link.stderr
    assert (home / ".config/snakemake/slurm").resolve() == (REPO / "profiles/slurm").resolve()
    proc = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "-n", "--configfile", str(DEMO)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Using profile slurm " in proc.stderr
    # nothing set: the study's cluster
    conf = _demo_config()
    _check_mapping(_dry_run_resources(proc.stdout + proc.stderr), _gpu_rules(conf),
                   STUDY_DEFAULT, STUDY_DEFAULT, STUDY_DEFAULT)


def test_profile_by_path_and_environment_overrides(tmp_path):
    env = _env(DNATOK_SLURM_ACCOUNT="none", DNATOK_SLURM_GPU_PARTITION="gpu-x", DNATOK_SLURM_CPU_PARTITION="all",
               DNATOK_SLURM_GPU_MODEL="3090")
    # --profile profiles/slurm, as typed in the repository; the workflow runs in tmp_path
    proc = subprocess.run(SNAKEMAKE + ["--profile", "profiles/slurm", "-n", "--configfile", str(DEMO),
                                       "--directory", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Using profile profiles/slurm " in proc.stderr
    # "none" drops the account; names that are Python builtins or numbers stay strings
    _check_mapping(_dry_run_resources(proc.stdout + proc.stderr), _gpu_rules(_demo_config()),
                   None, "gpu-x", "all", gpu_model="3090")


# ---------------------------------------------------------------- the workflow on SLURM
def test_workflow_runs_on_slurm_with_gpu_rules_on_the_gpu_partition(cluster, tmp_path):
    conf = _demo_config()
    gpu_rules = _gpu_rules(conf)
    bench = next(iter(conf["benchmarks"]))
    task = sorted(conf["benchmarks"][bench]["tasks"])[0]
    model = next(iter(conf["models"]))
    tok = next(iter(conf["tokenizers"]))
    small = yaml.safe_load(SMALL.read_text())                 # small.yaml is given second
    grid = small["models"][model]["grid"]["learning_rate"]
    pack_runs = len(grid) * len(small["seeds"])
    target = f"results/finetune/corrected/{bench}/{task}/{model}/{tok}/pack-g0.tsv"
    log_path = tmp_path / "snakemake.log"
    cmd = SNAKEMAKE + ["--configfile", str(DEMO), str(SMALL),
                       "--profile", str(REPO / "profiles/slurm"), "--profile", str(REPO / "profiles/slurm-ci"),
                       "--verbose", target]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(**CI_SETTINGS), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            rc = proc.wait(timeout=480)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # SIGINT (not SIGTERM) makes Snakemake scancel its jobs
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = None
    output = log_path.read_text()
    if rc != 0:
        job_logs = "".join(f"\n--- {p}\n{p.read_text()[-2000:]}"
                           for p in sorted((tmp_path / ".snakemake/slurm_logs").rglob("*.log")))
        pytest.fail(f"snakemake on SLURM {'timed out' if rc is None else f'exited {rc}'}:\n"
                    f"{output[-6000:]}{job_logs[-6000:]}")
    assert (tmp_path / target).is_file()
    runs = sorted((tmp_path / target).parent.glob("*/seed*/metrics.json"))
    assert len(runs) == pack_runs == 2, runs            # one job trained the whole pack

    # SLURM job id -> rule, from the plugin's submission messages (log path .../rule_<rule>/...)
    submitted = {m.group(1): m.group(2) for m in re.finditer(
        r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_([^/]+)/", output)}
    rules = set(submitted.values())
    # the target (a char pack) needs pretraining and fine-tuning, not the learned tokenizer
    assert {"pretrain", "finetune"} <= rules & gpu_rules and rules - gpu_rules, f"submitted: {submitted}"
    # the sbatch command lines, as the plugin ran them
    calls: dict[str, str] = {}
    for line in re.findall(r"sbatch call: (sbatch .*)", output):
        rule = re.search(r"/slurm_logs/rule_([^/]+)/", line).group(1)
        calls.setdefault(rule, line)
    assert set(calls) == rules
    for rule, line in calls.items():
        assert "--requeue" in line and "-A dnatok-ci" in line, line
        if rule in gpu_rules:
            assert "-p ci-gpu" in line and "--gpus=a6000:1" in line and "--gres" not in line, line
        else:
            assert "-p ci-cpu" in line and "--gpus" not in line and "--gres" not in line, line

    # what SLURM recorded for each job (finished jobs stay visible for MinJobAge = 300 s)
    jobcomp = {m.group(1): m.group(2) for m in re.finditer(
        r"JobId=(\d+) .*?Partition=(\S+)", (cluster / "jobcomp.txt").read_text())}
    seen = []
    for jobid, rule in sorted(submitted.items(), key=lambda kv: int(kv[0])):
        info = _job(jobid)
        want_partition = "ci-gpu" if rule in gpu_rules else "ci-cpu"
        assert info["JobState"] == "COMPLETED", (jobid, rule, info)
        assert info["Partition"] == jobcomp[jobid] == want_partition, (jobid, rule, info)
        assert info["Account"] == "dnatok-ci" and info["Requeue"] == "1", (jobid, rule, info)
        assert info["Comment"].startswith(f"rule_{rule}"), (jobid, rule, info)
        # a pack asks for the per-run runtime times its runs
        sized = _config_resource(conf, rule, "runtime") * (pack_runs if rule == "finetune" else 1)
        assert _minutes(info["TimeLimit"]) == sized, (jobid, rule, info)
        assert int(info["CPUs/Task"]) == _config_resource(conf, rule, "threads"), (jobid, rule, info)
        if rule in gpu_rules:
            assert "gres:gpu:a6000:1" in _gpu_request(info), (jobid, rule, info)
        else:
            assert "gpu" not in _gpu_request(info), (jobid, rule, info)
        seen.append(f"{jobid}:{rule}:{info['Partition']}:{_gpu_request(info).strip() or '-'}")
    print("SLURM jobs (id:rule:partition:gpu request):", ", ".join(seen))
