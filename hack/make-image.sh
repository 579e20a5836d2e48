#!/bin/sh
# Packs a busybox root filesystem (hack/make-rootfs.sh) into a docker-archive tarball with one
# layer, which both `ctr images import` and `podman load` read: no registry, no network.
# Usage: hack/make-image.sh OUT.tar [NAME:TAG]   (default name localhost/berth-busybox:latest)
set -eu
out=${1:?usage: hack/make-image.sh OUT.tar [NAME:TAG]}
name=${2:-localhost/berth-busybox:latest}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/make-rootfs.sh" "$work/rootfs"
mkdir "$work/image"
# A reproducible layer: sorted names, fixed times and owners.
tar -C "$work/rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf "$work/image/layer.tar" .
diff_id=$(sha256sum "$work/image/layer.tar" | cut -d' ' -f1)
cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/make-image.sh"}]}
JSON
config_id=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/image/$config_id.json"
mkdir "$work/image/$diff_id"
mv "$work/image/layer.tar" "$work/image/$diff_id/layer.tar"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
    "$config_id" "$name" "$diff_id" > "$work/image/manifest.json"
tar -C "$work/image" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out" .
