"""Forward + backward time of the vid2vid generator and image discriminator, with the reference warp
(grid_sample chain) against the fused ops, in one run: the two generators share their weights and alternate.

    python benchmarks/bench_model.py --height 128 --width 256 --ngf 64

Prints a Markdown table. The warp is a small part of a whole G + D step, so expect a ratio near 1 on CPU;
the ops' own speedups are in benchmarks/ops_table.py.
"""

import argparse
import statistics
import time

import torch

from vid2vid_fast.models import MultiscaleDiscriminator, Vid2VidGenerator, gan_loss


def step(G, D, labels, prev):
    out = G(labels, prev)
    label_t = labels[:, -G.label_nc:]
    preds = D(torch.cat((label_t, out.img_final), dim=1))
    loss = gan_loss(preds, True) + out.img_raw.abs().mean()
    loss.backward()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--label_nc", type=int, default=1, help="channels of one frame's label (1: edge map)")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    generators = {}
    for backend in ("reference", "auto"):
        torch.manual_seed(0)
        generators[backend] = Vid2VidGenerator(args.label_nc, ngf=args.ngf, backend=backend)
    D = MultiscaleDiscriminator(args.label_nc + 3, ndf=args.ndf)
    labels = torch.rand(args.batch, 3 * args.label_nc, args.height, args.width)
    prev = torch.rand(args.batch, 6, args.height, args.width) * 2 - 1
    times = {name: [] for name in generators}
    for i in range(args.repeats + 1):  # the first round warms up
        for name, G in generators.items():
            G.zero_grad(set_to_none=True)
            D.zero_grad(set_to_none=True)
            start = time.perf_counter()
            step(G, D, labels, prev)
            if i > 0:
                times[name].append(time.perf_counter() - start)
        print(f"round {i}/{args.repeats}", flush=True)
    ref, fused = statistics.median(times["reference"]), statistics.median(times["auto"])
    params = sum(p.numel() for p in generators["auto"].parameters())
    print(f"\nG ({params / 1e6:.1f} M parameters, ngf {args.ngf}) + image D (ndf {args.ndf}), forward + backward, "
          f"{args.batch}x{args.height}x{args.width}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print("| warp | s / step |\n|---|---:|")
    print(f"| reference (grid_sample chain) | {ref:.3f} |\n| fused (backend auto) | {fused:.3f} |")
    print(f"\nspeedup: {ref / fused:.3f}x")


if __name__ == "__main__":
    main()
