"""The player's web side: a Starlette app serving the page and one websocket.

    app = create_app(Player(session, hold_fps=10, record_dir="DIR/play"))
    uvicorn.Server(uvicorn.Config(app)).run(sockets=[bound_socket])

GET /            the page (static/index.html; static/play.js reads the keyboard)
GET /static/...  its script
WS  /ws          the one player connection

One generation loop: the session belongs to one websocket at a time; a second tab is told that
the player is busy and closed (close code BUSY_CLOSE_CODE), never given a second model. The
loop turns each key press into one unit of frames (a press is never lost, however short) and,
while a key is held, into further units at `hold_fps` at most; reset, restart and record run in
the same loop, between frames. Generation runs in a worker thread so that the websocket keeps
reading key events meanwhile.

Messages, JSON. Page -> server: {"type": "press", "control": NAME, "id": N},
{"type": "release", "control": NAME}, {"type": "reset"}, {"type": "restart"},
{"type": "record"}. Server -> page: "hello" (controls, model, first images), "frame" (images as
PNG data URLs, frame_count, seconds, fps, state_bytes, the press id it answers), "status"
(a line for the user), "busy" (then closed), "error".
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import io
import pathlib
import threading
import time

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from lssvwm.errors import LssvwmError
from lssvwm.play.recording import next_recording_dir, save_recording
from lssvwm.play.session import PlayFrame, PlaySession

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static"
BUSY_CLOSE_CODE = 4000  # an application close code: "another tab is playing"
BUSY_MESSAGE = (
    "Another tab is already playing this model: one generation runs at a time. Close that tab "
    "(or stop it) and reload this one."
)


def png_data_url(image_HWC: np.ndarray | None) -> str | None:
    if image_HWC is None:
        return None
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image_HWC, np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclasses.dataclass
class _Input:
    """Key state of the connected page: presses not yet answered, keys held down."""

    presses: collections.deque = dataclasses.field(default_factory=collections.deque)
    held: dict = dataclasses.field(default_factory=dict)  # control -> time pressed
    commands: collections.deque = dataclasses.field(default_factory=collections.deque)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class Player:
    """The session behind the one websocket (module docstring)."""

    def __init__(
        self,
        session: PlaySession,
        *,
        hold_fps: float = 10.0,
        record_dir: str | pathlib.Path,
        video_format: str = "auto",
    ):
        if hold_fps <= 0:
            raise ValueError(f"hold_fps must be > 0, got {hold_fps}")
        self.session = session
        self.hold_fps = hold_fps
        self.record_dir = pathlib.Path(record_dir)
        self.video_format = video_format
        self._client: WebSocket | None = None
        self._session_lock = threading.Lock()  # a cancelled loop's thread may still be stepping

    # ---- messages ---------------------------------------------------------------------------

    def hello(self) -> dict:
        session = self.session
        return {
            "type": "hello",
            "controls": session.controls.to_json(),
            "kind": session.controls.kind,
            "model": session.run.describe(),
            "checkpoint_step": session.run.step,
            "hold_fps": self.hold_fps,
            "reset_scope": session.options.reset_scope,
            "unit": session.unit,
            **self._figures(),
            "image": png_data_url(session.frames[-1] if session.frames else None)
            or png_data_url(session.context_truth_HWC()),
            "truth": png_data_url(session.truths[-1] if session.truths else None)
            or (png_data_url(session.context_truth_HWC()) if session.view else None),
            "map": png_data_url(session.map_HWC()),
        }

    def _figures(self) -> dict:
        session = self.session
        return {
            "frame_count": session.frame_count,
            "state_bytes": session.state_bytes,
            "fps": session.fps,
        }

    def _frame_message(self, frame: PlayFrame, press_id, map_url) -> dict:
        return {
            "type": "frame",
            "image": png_data_url(frame.frame_HWC),
            "truth": png_data_url(frame.truth_HWC),
            "map": map_url,
            "control": frame.control,
            "blocked": frame.blocked,
            "seconds": frame.seconds,
            "press_id": press_id,
            **self._figures(),
        }

    # ---- work done in the worker thread -----------------------------------------------------

    def _step(self, control: str, press_id) -> list[dict]:
        with self._session_lock:
            frames = self.session.step(control)
            map_url = png_data_url(self.session.map_HWC())
            return [self._frame_message(f, press_id, map_url) for f in frames]

    def _command(self, name: str) -> dict:
        with self._session_lock:
            session = self.session
            if name == "reset":
                session.reset_memory()
                text = (
                    f"memory reset ({session.options.reset_scope}) before frame "
                    f"{session.frame_count}"
                )
            elif name == "restart":
                session.restart()
                return {**self.hello(), "status": "restarted from the context"}
            elif name == "record":
                directory = next_recording_dir(self.record_dir)
                record = save_recording(session, directory, video_format=self.video_format)
                text = f"recorded {record['frames']} frames to {directory}"
                return {"type": "status", "message": text, "directory": str(directory)}
            else:
                raise LssvwmError(f"unknown command {name!r}")
            return {"type": "status", "message": text, **self._figures()}

    # ---- the loop ---------------------------------------------------------------------------

    async def _generate(self, websocket: WebSocket, state: _Input) -> None:
        """The one generation loop of a connection (module docstring)."""
        last_frame = 0.0
        while True:
            if state.commands:
                name = state.commands.popleft()
                try:
                    message = await asyncio.to_thread(self._command, name)
                except LssvwmError as error:
                    message = {"type": "error", "message": str(error)}
                await websocket.send_json(message)
                continue
            if state.presses:
                control, press_id = state.presses.popleft()
            elif state.held:
                control = max(state.held, key=state.held.get)  # the latest key pressed
                press_id = None
                wait = last_frame + 1.0 / self.hold_fps - time.perf_counter()
                if wait > 0:
                    state.wake.clear()
                    try:
                        await asyncio.wait_for(state.wake.wait(), timeout=wait)
                    except TimeoutError:
                        pass
                    continue  # re-read: released, or a new press meanwhile
            else:
                state.wake.clear()
                await state.wake.wait()
                continue
            last_frame = time.perf_counter()
            try:
                messages = await asyncio.to_thread(self._step, control, press_id)
            except LssvwmError as error:
                messages = [{"type": "error", "message": str(error)}]
            for message in messages:
                await websocket.send_json(message)

    async def websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if self._client is not None:
            await websocket.send_json({"type": "busy", "message": BUSY_MESSAGE})
            await websocket.close(code=BUSY_CLOSE_CODE)
            return
        self._client = websocket
        state = _Input()
        loop = None
        try:
            await websocket.send_json(await asyncio.to_thread(self._locked_hello))
            loop = asyncio.create_task(self._generate(websocket, state))
            names = set(self.session.controls.names)
            while True:
                receive = asyncio.create_task(websocket.receive_json())
                done, _ = await asyncio.wait({receive, loop}, return_when=asyncio.FIRST_COMPLETED)
                if loop in done:  # the loop failed: surface its error
                    receive.cancel()
                    loop.result()
                message = receive.result()
                kind, control = message.get("type"), message.get("control")
                if kind == "press" and control in names:
                    state.presses.append((control, message.get("id")))
                    state.held[control] = time.perf_counter()
                elif kind == "release":
                    state.held.pop(control, None)
                elif kind in ("reset", "restart", "record"):
                    state.commands.append(kind)
                state.wake.set()
        except WebSocketDisconnect:
            pass
        finally:
            if loop is not None:
                loop.cancel()
            self._client = None

    def _locked_hello(self) -> dict:
        with self._session_lock:
            return self.hello()


def create_app(player: Player) -> Starlette:
    async def index(request):
        del request
        return FileResponse(STATIC_DIR / "index.html")

    return Starlette(
        routes=[
            Route("/", index),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
            WebSocketRoute("/ws", player.websocket),
        ]
    )
