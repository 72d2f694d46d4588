"""UDP echo and probe for the loss bed's own test (tests/test_loss_bed.py); run on a bed host.

``--serve``: echo every datagram back. Otherwise send ``--count`` datagrams to ``--to`` and
print one JSON line ``{"ev": "probe", "echoed": N}`` with how many came back.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys

PORT = 47999


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--to", default="")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--iface", required=True)
    args = parser.parse_args()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if args.serve:
            sock.bind((args.iface, PORT))
            print(json.dumps({"ev": "ready"}), flush=True)
            while True:
                data, source = sock.recvfrom(2048)
                sock.sendto(data, source)
        sock.bind((args.iface, 0))
        sock.settimeout(0.002)
        echoed: set[int] = set()
        for i in range(args.count):
            sock.sendto(i.to_bytes(4, "big"), (args.to, PORT))
            try:
                data, _ = sock.recvfrom(2048)
                echoed.add(int.from_bytes(data[:4], "big"))
            except TimeoutError:
                pass
        sock.settimeout(0.3)
        while True:
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                break
            echoed.add(int.from_bytes(data[:4], "big"))
        sys.stdout.write(json.dumps({"ev": "probe", "echoed": len(echoed)}) + "\n")


if __name__ == "__main__":
    main()
