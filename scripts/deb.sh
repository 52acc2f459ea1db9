#!/usr/bin/env bash
# `make deb`: the Debian package, from the release binary (FIELDCAST_BIN when set, else this
# checkout's release build, built if needed), with dpkg-deb:
#   /usr/bin/fieldcast, the systemd unit, /etc/fieldcast/fieldcast.toml (a conffile), and
#   maintainer scripts that make the `fieldcast` system user and /var/lib/fieldcast.
# Prints the package's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk -F'"' '/^version/ {print $2; exit}' Cargo.toml)
arch=$(dpkg --print-architecture)
out=target/debian
root=$out/fieldcast_${version}_${arch}
deb=$out/fieldcast_${version}_${arch}.deb

bin=${FIELDCAST_BIN:-}
if [[ -z "$bin" ]]; then
  cargo build --release --locked
  bin=target/release/fieldcast
fi
rm -rf "$root" && mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/fieldcast" "$root/usr/share/doc/fieldcast"
# Debug info stays in target/release (it is 200 MB of the binary's 210).
objcopy --strip-debug "$bin" "$root/usr/bin/fieldcast"
install -m 0644 packaging/deb/fieldcast.service "$root/lib/systemd/system/fieldcast.service"
install -m 0640 packaging/deb/fieldcast.toml "$root/etc/fieldcast/fieldcast.toml"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
echo /etc/fieldcast/fieldcast.toml > "$root/DEBIAN/conffiles"
install -m 0644 README.md "$root/usr/share/doc/fieldcast/README.md"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: fieldcast
Version: $version
Architecture: $arch
Maintainer: Fieldcast developers <fieldcast@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.36), libgcc-s1, libgstreamer1.0-0 (>= 1.22), libgstreamer-plugins-base1.0-0 (>= 1.22), gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, gstreamer1.0-plugins-ugly, gstreamer1.0-libav, gstreamer1.0-x, fonts-dejavu-core, fonts-noto-core, fonts-noto-cjk, ca-certificates, adduser
Section: video
Priority: optional
Description: live-commerce media server (RTMP in, WebRTC out)
 Fieldcast takes RTMP from OBS or a phone, burns a product card, counters, a
 countdown and purchase toasts into the picture, and sends it to browsers over
 WebRTC (WHEP), with a watch page to buy from and an operator console.
CONTROL
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
