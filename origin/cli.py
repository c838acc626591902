"""``edgeproof origin …``: serve, sample-catalog, prescale, sign, presets (push, list)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    from edgeproof.origin.config import from_args
    from edgeproof.origin.workers import serve

    return serve(from_args(args))


def _catalog(args: argparse.Namespace) -> int:
    from edgeproof.origin.catalog import generate_catalog

    result = generate_catalog(args.out, count=args.count, images_per_sku=args.images_per_sku, seed=args.seed,
                              progress=not args.quiet, distinct=args.distinct)
    print(f"{result.images} images ({result.generated} generated, {result.reused} reused) in {result.out}; "
          f"manifest {result.manifest}")
    return 0


def _prescale(args: argparse.Namespace) -> int:
    from edgeproof.origin.prescale import run_prescale

    summary = run_prescale(
        sources=args.sources, derivatives=args.derivatives, variants=args.variants, keys_file=args.keys,
        jobs=args.jobs, presets_file=args.presets, progress=not args.quiet,
    )
    print(summary.line())
    return 1 if summary.failed else 0


def _sign(args: argparse.Namespace) -> int:
    import urllib.parse

    from edgeproof.origin.signing import format_negotiated, sign, signed_message

    from edgeproof.canonical import load_presets, parse_request

    url = urllib.parse.urlsplit(args.url)
    params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    params.pop("sig", None)
    key, variant = parse_request(urllib.parse.unquote(url.path), params, "", load_presets(args.presets))
    path = urllib.parse.unquote(url.path)
    message = signed_message(key, variant, negotiated=format_negotiated(path, params))
    sig = sign(message, args.key)
    sep = "&" if url.query else "?"
    print(f"{args.url}{sep}sig={sig}")
    if args.verbose:
        print(f"signed message: {message}", file=sys.stderr)
    return 0


def _presets_push(args: argparse.Namespace) -> int:
    from edgeproof.origin.presets import load_preset_file
    from edgeproof.origin.presets_table import PresetsTable, push_presets

    file = load_preset_file(args.file)  # checked in full before anything is written
    result = push_presets(file, PresetsTable(args.table), create=args.create)
    made = " (table created, on-demand billing)" if result.created else ""
    print(f"pushed {result.presets} presets and {result.policies} policies to {result.table}{made}")
    return 0


def _presets_list(args: argparse.Namespace) -> int:
    from edgeproof.origin.presets import Policy, load_preset_file
    from edgeproof.origin.presets_table import PresetsTable, read_items

    from edgeproof.canonical import Variant
    from edgeproof.errors import ConfigError

    items = read_items(PresetsTable(args.table), load_preset_file(args.presets))
    for name, value in items.presets:
        print(f"preset  {name}  {value.ops if isinstance(value, Variant) else 'MALFORMED: ' + str(value.detail)}")
    for rule in items.policies:
        if isinstance(rule.policy, Policy):
            p = rule.policy
            text = " ".join(part for part in (
                f"widths={','.join(map(str, p.widths))}" if p.widths else "",
                f"formats={','.join(p.formats)}" if p.formats else "",
                f"max_quality={p.max_quality}" if p.max_quality != 100 else "") if part) or "(no limits)"
        else:
            text = f"MALFORMED: {rule.policy.detail}"
        print(f"policy  {rule.prefix}  {text}")
    print(f"{len(items.presets)} presets, {len(items.policies)} policies in {args.table}", file=sys.stderr)
    if items.malformed:
        raise ConfigError(f"{items.malformed} malformed items in presets table {args.table} (marked MALFORMED above)")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    from edgeproof.origin.config import add_arguments

    sub = parser.add_subparsers(dest="origin_command", metavar="SUBCOMMAND")

    serve = sub.add_parser("serve", help="run the origin (aiohttp + pyvips) on a port",
                           description="Serve canonical and friendly image requests; see docs/origin.md.")
    add_arguments(serve)
    serve.set_defaults(func=_serve)

    cat = sub.add_parser("sample-catalog", help="generate synthetic product photos (JPEG/PNG, EXIF, CMYK)")
    cat.add_argument("--count", type=int, required=True, help="number of images")
    cat.add_argument("--out", required=True, help="output folder (or s3://bucket/prefix)")
    cat.add_argument("--images-per-sku", type=int, default=2, help="images per SKU (default 2)")
    cat.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    cat.add_argument("--distinct", type=int, default=0, metavar="N",
                     help="draw only N images; the other keys share their pixels (hard links): a catalog of "
                          "thousands of SKUs made in seconds, every key still its own source (default 0: all drawn)")
    cat.add_argument("--quiet", action="store_true", help="no progress line")
    cat.set_defaults(func=_catalog)

    pre = sub.add_parser("prescale", help="pre-generate variants into the derivative store (resumable)")
    pre.add_argument("--sources", required=True, help="source store: folder or s3://bucket/prefix")
    pre.add_argument("--derivatives", required=True, help="derivative store: folder or s3://bucket/prefix")
    pre.add_argument("--variants", required=True,
                     help="comma-separated preset names or ops strings separated by ';', or a file of one per line")
    pre.add_argument("--keys", help="file with one source key per line (default: every key in --sources)")
    pre.add_argument("--jobs", type=int, default=0, help="parallel transforms (default: one per core)")
    pre.add_argument("--presets", help="TOML presets file (adds to thumb/card/pdp/zoom)")
    pre.add_argument("--quiet", action="store_true", help="no progress line")
    pre.set_defaults(func=_prescale)

    sg = sub.add_parser("sign", help="print a signed URL (HMAC-SHA256, see docs/origin.md)")
    sg.add_argument("url", help="a path such as /images/a.jpg/w=640,h=0,fit=cover,q=80,f=webp or /images/a.jpg?w=640")
    sg.add_argument("--key", required=True, help="the signing key")
    sg.add_argument("--presets", help="TOML presets file")
    sg.add_argument("-v", "--verbose", action="store_true", help="also print the signed message")
    sg.set_defaults(func=_sign)

    pr = sub.add_parser("presets", help="presets and path policies in a DynamoDB table (origin serve --presets-table)",
                        description="Load a presets TOML file into the DynamoDB table that origin serve "
                                    "--presets-table reads, or list the table; see docs/origin.md.")
    prs = pr.add_subparsers(dest="presets_command", metavar="SUBCOMMAND", required=True)
    push = prs.add_parser("push", help="write a TOML file's presets and policies to the table",
                          description="Check FILE as origin serve --presets does, then write each of its presets "
                                      "(resolved) and policies as one item; other items stay.")
    push.add_argument("file", metavar="FILE.toml", help="presets file: [presets.NAME] and [policies.\"/prefix/\"]")
    push.add_argument("--table", required=True, help="DynamoDB table name")
    push.add_argument("--create", action="store_true", help="create the table (on-demand billing) if it is missing")
    push.set_defaults(func=_presets_push)
    ls = prs.add_parser("list", help="print the table's presets and policies (exit 2 if an item is malformed)")
    ls.add_argument("--table", required=True, help="DynamoDB table name")
    ls.add_argument("--presets", metavar="FILE", help="presets file the items may build on (as origin serve's)")
    ls.set_defaults(func=_presets_list)
