r"""Live play measured in a real browser: key press to frame, and frames per second held.

    python -m experiments.play.measure --workdir=/tmp/qs --out experiments/play

Starts the real player (`python -m lssvwm.play --port=0`, with `--hold_fps` far above what the
model can do, so holding a key runs it flat out), opens the page in headless Debian chromium
through selenium, and measures in the browser's own clock:
  latency  single presses (forward and turn alternately), each waiting for its frame: from the
           keydown event to the frame's arrival on the page (performance.now), so it holds the
           websocket both ways, generation, the PNG and the true view's render
  fps      a key held for `--hold_seconds`: frames received per second between the first and
           the last held frame (what a user walking sees)
and the model's own share: the generation time per frame the server reports (the sampler's
jitted unit, blocked until ready) and the player process's CPU seconds per held frame (from
/proc: on a machine shared with other jobs, wall times stretch but CPU time much less). It takes
a screenshot of the page. Writes OUT/play.json, OUT/play.md and OUT/screenshot.png.
The helpers (`start_player`, `headless_chromium`, `press`, `wait_for`) are what
tests/play/test_browser.py drives the page with.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"play: open (http://\S+)")


def chromium_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) as Debian installs them, or None where either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_player(
    workdir, *flags: str, log_path: pathlib.Path, timeout: float = 900.0
) -> tuple[subprocess.Popen, str]:
    """Starts `python -m lssvwm.play --workdir=... --port=0 FLAGS`; (process, URL) once it
    serves. Its log (stderr) goes to `log_path`; a start that fails raises with its tail."""
    log = open(log_path, "w")  # noqa: SIM115 (the process writes to it while it runs)
    process = subprocess.Popen(
        [sys.executable, "-m", "lssvwm.play", f"--workdir={workdir}", "--port=0", *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        match = URL_LINE.search(line)
        if match:
            return process, match.group(1)
    stop_player(process)
    tail = pathlib.Path(log_path).read_text()[-2000:]
    raise RuntimeError(f"the player did not start (exit {process.returncode}): {tail}")


def stop_player(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def headless_chromium(width: int = 980, height: int = 620):
    """A selenium driver of Debian's chromium, headless (no display, root without sandbox)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def wait_for(driver, script: str, timeout: float = 300.0, poll: float = 0.05):
    """Polls the page until `script` (JS returning a value) returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"the page never satisfied: {script}")


def press(driver, key: str, hold_seconds: float = 0.0) -> None:
    """Presses `key` (a selenium Keys value or a letter) for `hold_seconds`."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).key_down(key).perform()
    time.sleep(hold_seconds)
    ActionChains(driver).key_up(key).perform()


def frames_received(driver) -> int:
    return int(driver.execute_script("return window.playStats.framesReceived"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(driver, presses: int, hold_seconds: float, player_pid: int) -> dict:
    from selenium.webdriver.common.keys import Keys

    keys = (Keys.ARROW_UP, Keys.ARROW_LEFT)
    for i in range(presses):
        before = frames_received(driver)
        press(driver, keys[i % 2])
        wait_for(driver, f"return window.playStats.framesReceived > {before}")
        time.sleep(0.2)  # idle between presses: each one meets a waiting server
    latencies = driver.execute_script("return window.playStats.latenciesMs")
    pressed_generation = driver.execute_script("return window.playStats.generationMs")
    before = frames_received(driver)
    cpu_before = cpu_seconds(player_pid)
    press(driver, Keys.ARROW_UP, hold_seconds)
    time.sleep(1.0)
    cpu_held = cpu_seconds(player_pid) - cpu_before
    times = driver.execute_script("return window.playStats.frameTimesMs")[before:]
    held_generation = driver.execute_script("return window.playStats.generationMs")[before:]
    held_fps = (len(times) - 1) / ((times[-1] - times[0]) / 1000.0) if len(times) > 1 else None
    ordered = sorted(latencies)
    return {
        "generation_ms_median_presses": sorted(pressed_generation)[len(pressed_generation) // 2],
        "generation_ms_median_held": sorted(held_generation)[len(held_generation) // 2],
        "player_cpu_seconds_per_held_frame": cpu_held / max(1, len(times)),
        "presses": len(latencies),
        "latency_ms_median": ordered[len(ordered) // 2],
        "latency_ms_p90": ordered[int(0.9 * (len(ordered) - 1))],
        "latency_ms": [round(x, 1) for x in latencies],
        "hold_seconds": hold_seconds,
        "held_frames": len(times),
        "held_fps": held_fps,
    }


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", default=str(REPO / "experiments" / "play"))
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--hold_seconds", type=float, default=10.0)
    parser.add_argument("--player_flag", action="append", default=[], help="e.g. --context=16")
    args = parser.parse_args()
    if chromium_paths() is None:
        sys.exit("error: needs Debian's chromium and chromium-driver (apt-get install ...)")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    flags = ["--hold_fps=1000", *args.player_flag]
    process, url = start_player(args.workdir, *flags, log_path=out / "player.log")
    startup = time.perf_counter() - started
    driver = headless_chromium()
    try:
        driver.get(url)
        wait_for(driver, "return window.playStats.messages.includes('hello')")
        result = measure(driver, args.presses, args.hold_seconds, process.pid)
        driver.save_screenshot(str(out / "screenshot.png"))
        state_bytes = driver.execute_script(
            "return document.getElementById('state-bytes').textContent"
        )
    finally:
        driver.quit()
        stop_player(process)
    (out / "player.log").unlink()
    config = json.loads((pathlib.Path(args.workdir) / "config.json").read_text())
    record = {
        "command": "python -m experiments.play.measure --workdir=WORKDIR "
        + " ".join(f"--player_flag={f}" for f in args.player_flag),
        "player_command": f"python -m lssvwm.play --workdir=WORKDIR --port=0 {' '.join(flags)}",
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_1min_at_end": os.getloadavg()[0],
        "model": {k: config["model"][k] for k in ("mixer", "image_size", "width", "depth")},
        "sampler_steps": config["diffusion"]["sampler_steps"],
        "player_startup_seconds": round(startup, 1),
        "carried_state_shown": state_bytes,
        **result,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "play.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "latency_ms"}, indent=2))


if __name__ == "__main__":
    main()
