#!/usr/bin/env python3
"""Prints the Debian mirror apt is configured with for SUITE (deb822 .sources first,
then one-line .list files); exits 1 when there is none. Used by the image builders so
no mirror host is written into the repository.

    python3 scripts/apt-mirror.py bookworm
"""
import glob, re, sys
suite = sys.argv[1]
def deb822(path):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            yield from fields.get("uris", "").split()
def oneline(path):
    for line in open(path):
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            yield words[1]
files = [(deb822, p) for p in sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))]
files += [(oneline, p) for p in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
for parse, path in files:
    try:
        for uri in parse(path):
            if uri.startswith(("http://", "https://", "file:")):
                print(uri)
                sys.exit(0)
    except OSError:
        pass
sys.exit(1)
