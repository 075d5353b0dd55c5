"""phanet app."""

from __future__ import annotations

import argparse

HELP = "a local web page and JSON API: photos, a video or the webcam in, faces with expression, pose and squares out"
DESCRIPTION = """Serve a web page for a trained network on this machine, and print its address.

The page takes photos (several at once), a short video and the webcam (in the browser, which sends
frames), and shows for every face its box, the expression probabilities, the pose (yaw) with its
probabilities, the S2 and S3 squares drawn on the picture and the scale weights c1..c3, with the
picture's table and a CSV of it: the columns and values of `phanet predict`, whose steps it runs.
It also shows what the model was trained on, its classes, input size and preset. Programs use the
JSON API:

  phanet app --checkpoint runs/demo/phanet
  phanet app --checkpoint model.onnx --port 8080
  curl --data-binary @photo.jpg 'http://127.0.0.1:8000/api/predict?name=photo.jpg'

--checkpoint takes a run folder of `phanet train` (its checkpoints/best.ckpt), a .ckpt or a .onnx
file. The server listens on 127.0.0.1, this machine only; --host 0.0.0.0 exposes it to the
network, to anyone who can reach the port. Uploads past the limits below, and requests past
--queue, are refused with a 4xx status and one line.
"""

#: The predictor's and the limits' parameters whose flag has another name.
FLAGS = {"path": "--checkpoint", "max_bytes": "--max-upload-mb", "max_video_bytes": "--max-video-mb"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="RUN_OR_CKPT", help="a run folder, a .ckpt or a .onnx file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 takes a free one (default 8000)")
    parser.add_argument(
        "--detector",
        choices=("yunet", "haar"),
        default="yunet",
        help="face detector: yunet (default) or haar (OpenCV's cascades); the one the training data were prepared with",
    )
    parser.add_argument(
        "--margin", type=float, default=0.2, help="margin around a detected face, as for phanet prepare (default 0.2)"
    )
    parser.add_argument("--min-face", type=int, default=24, metavar="PX", help="smallest face side to detect (default 24)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="run a .ckpt with PyTorch or ONNX Runtime")
    parser.add_argument("--device", default="cpu", help="PyTorch device for a .ckpt: cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--max-upload-mb", type=float, default=20, metavar="MB", help="largest picture upload (default 20)")
    parser.add_argument(
        "--max-pixels",
        type=float,
        default=24,
        metavar="MP",
        help="most megapixels a picture or video frame may have (default 24)",
    )
    parser.add_argument("--max-video-mb", type=float, default=100, metavar="MB", help="largest video upload (default 100)")
    parser.add_argument("--max-video-seconds", type=float, default=60, metavar="S", help="longest video (default 60)")
    parser.add_argument(
        "--max-video-frames",
        type=int,
        default=120,
        metavar="N",
        help="most frames predicted per video, sampled evenly (default 120)",
    )
    parser.add_argument(
        "--queue", type=int, default=8, metavar="N", help="requests admitted at once, the running one included (default 8)"
    )


def run(args: argparse.Namespace) -> int:
    from phanet.app import Limits, checkpoint_path, serve
    from phanet.checks import margin, torch_device
    from phanet.errors import PhanetError

    margin(args.margin)
    torch_device(args.device)
    if not 0 <= args.port <= 65535:
        raise PhanetError.about("port", "expected 0 to 65535, got {value}", value=args.port)
    mb = 1024 * 1024
    limits = Limits(
        max_bytes=round(args.max_upload_mb * mb),
        max_pixels=round(args.max_pixels * 1e6),
        max_video_bytes=round(args.max_video_mb * mb),
        max_video_seconds=args.max_video_seconds,
        max_video_frames=args.max_video_frames,
        queue=args.queue,
    )
    serve(
        checkpoint_path(args.checkpoint),
        host=args.host,
        port=args.port,
        limits=limits,
        backend=args.backend,
        device=args.device,
        detector=args.detector,
        margin=args.margin,
        min_face=args.min_face,
    )
    return 0
