#!/usr/bin/env python3
"""Encode (or index) a corpus too large for one machine on a Ray cluster, one
`splade encode --shard I/N` (or `splade index build --shard I/N`) per Ray task, and join
the shards into the whole corpus's output: the same bytes as one run over the whole corpus
(SCALE.md, "Sharded encoding").

Every task runs the `splade` binary on the node Ray schedules it on, so the binary, the
model (or its cache, `SPLADE_RS_CACHE`), the input and the output folder must be reachable
at the same paths on every node (a shared file system). Tasks write through `--resume`:
running the job again after a crash or a lost node continues every unfinished shard from
its last synced chunk and skips the finished ones.

    ray start --head                      # or join an existing cluster
    python3 scripts/scale/ray_encode_shards.py --splade target/release/splade \
        --input corpus.jsonl --jsonl-field text --id-field _id \
        --shards 8 --work-dir /shared/run1 --output /shared/run1/vectors.jsonl
    # or, one index per shard merged into the whole corpus's index:
    python3 scripts/scale/ray_encode_shards.py --splade target/release/splade \
        --corpus corpus.jsonl --shards 8 --work-dir /shared/run1 --index-out /shared/index
"""

import argparse
import os
import subprocess
import sys
import tempfile

import ray


def shard_command(args, i):
    """The `splade` command line of shard `i` of `args.shards`, and the path it writes."""
    spec = f"{i}/{args.shards}"
    name = f"shard-{i:05d}-of-{args.shards:05d}"
    common = [
        "--model", args.model,
        "--batch-size", str(args.batch_size),
        "--chunk-size", str(args.chunk_size),
        "--shard", spec,
        "--resume",
    ]
    if args.corpus:
        out = os.path.join(args.work_dir, name)
        cmd = [args.splade, "--threads", str(args.cpus_per_shard), "index", "build",
               "--corpus", args.corpus, "--out", out] + common
    else:
        out = os.path.join(args.work_dir, name + ".jsonl")
        cmd = [args.splade, "--threads", str(args.cpus_per_shard), "encode", "--document",
               "--input", args.input, "--output", out] + common
        if args.jsonl_field:
            cmd += ["--jsonl-field", args.jsonl_field]
        if args.id_field:
            cmd += ["--id-field", args.id_field]
    return cmd, out


@ray.remote
def run_shard(cmd):
    """Runs one shard's command on this node; its stderr is kept for the error message."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return done.stderr


def concatenate(paths, output):
    """Writes the shard files, in shard order, to `output`: through a temporary file beside
    it, synced and renamed, so `output` is complete or absent."""
    folder = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".vectors-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for path in paths:
                with open(path, "rb") as f:
                    while block := f.read(1 << 20):
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto)")
    p.add_argument("--splade", required=True, help="path of the splade binary on every node")
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--shards", type=int, required=True, help="number of shards N")
    p.add_argument("--cpus-per-shard", type=int, default=2,
                   help="CPUs Ray reserves per task, and the task's --threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunk-size", type=int, default=4096,
                   help="texts per encode call: the unit of shards and resumes (keep it "
                        "the same for every run that must give the same bytes)")
    p.add_argument("--work-dir", required=True, help="shared folder for the shard outputs")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--input", help="texts to encode (plain text, or JSONL with --jsonl-field)")
    what.add_argument("--corpus", help="corpus to index (BEIR corpus.jsonl or plain text)")
    p.add_argument("--jsonl-field")
    p.add_argument("--id-field")
    p.add_argument("--output", help="with --input: the joined vectors file")
    p.add_argument("--index-out", help="with --corpus: the merged index directory")
    args = p.parse_args()
    if args.input and not args.output:
        p.error("--input needs --output")
    if args.corpus and not args.index_out:
        p.error("--corpus needs --index-out")
    os.makedirs(args.work_dir, exist_ok=True)

    ray.init(address=args.address)
    commands = [shard_command(args, i) for i in range(args.shards)]
    tasks = [run_shard.options(num_cpus=args.cpus_per_shard).remote(cmd) for cmd, _ in commands]
    for (cmd, out), log in zip(commands, ray.get(tasks)):
        print(f"{out}: {log.strip().splitlines()[-1] if log.strip() else 'done'}", file=sys.stderr)
    outputs = [out for _, out in commands]
    if args.corpus:
        subprocess.run([args.splade, "index", "merge", "--overwrite", "--out", args.index_out]
                       + outputs,
                       check=True)
    else:
        concatenate(outputs, args.output)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
