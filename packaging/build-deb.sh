#!/usr/bin/env bash
# Builds imp-cdr_<version>_<arch>.deb from the built tree (run `make build` first) with dpkg-deb, and
# with --bundle also the signed firmware bundle imp-cdr_<version>_<arch>.bundle around it.
#
#     packaging/build-deb.sh [--bundle] [OUTPUT_DIR]      (default: build/)
#
# The package contains the compiled code and the production node_modules under /opt/imp-cdr, the
# systemd units, /etc/imp-cdr/cdr.yaml as a conffile and its pristine copy in /opt/imp-cdr/defaults,
# sysusers.d and tmpfiles.d entries, the IMP-CDR-MIB when the tree has one, /usr/bin/cdrctl, and the
# public key that verifies its firmware bundles. The architecture is the build machine's because
# node_modules contains compiled addons (classic-level, unix-dgram).
#
# Signing key: IMP_CDR_RELEASE_KEY names the Ed25519 release signing key (private, PEM). Without it the
# build is a development build: it signs with var/firmware-dev-key/signing-key.pem, created on first
# use. Standard output lists the files written; standard error names the key.
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=false
if [ "${1:-}" = "--bundle" ]; then
  bundle=true
  shift
fi
output_dir="${1:-build}"
if [ ! -f dist/.built ]; then
  echo "build-deb.sh: dist/ is not built; run make build first" >&2
  exit 1
fi

version="$(node -p "require('./package.json').version")"
arch="$(dpkg --print-architecture)"
package="imp-cdr_${version}_${arch}.deb"

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
root="$staging/root"
opt="$root/opt/imp-cdr"

# Code: the daemons, cdrctl and the shared modules; tests and benchmarks stay out.
mkdir -p "$opt/dist"
cp -a dist/services dist/modules dist/hw dist/firmware "$opt/dist/"
find "$opt/dist" -name '*.map' -delete
cp package.json package-lock.json "$opt/"
mkdir -p "$opt/docs"
cp docs/*.md "$opt/docs/"

# Production dependencies: a copy of the built node_modules with the development packages pruned,
# so the compiled addons are the ones the tests ran against and no registry is needed.
cp -a node_modules "$opt/node_modules"
(cd "$opt" && npm prune --omit=dev --no-audit --no-fund --ignore-scripts >/dev/null)

mkdir -p "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/etc/imp-cdr" "$root/usr/bin"
cp packaging/systemd/*.service packaging/systemd/*.target "$root/lib/systemd/system/"
cp packaging/debian/sysusers.conf "$root/usr/lib/sysusers.d/imp-cdr.conf"
cp packaging/debian/tmpfiles.conf "$root/usr/lib/tmpfiles.d/imp-cdr.conf"
cp packaging/debian/cdr.yaml "$root/etc/imp-cdr/cdr.yaml"
mkdir -p "$root/etc/snmp/snmpd.conf.d"
cp packaging/debian/snmpd.conf "$root/etc/snmp/snmpd.conf.d/imp-cdr.conf"
# A pristine copy of the conffile, which the console's factory reset writes over /etc/imp-cdr/cdr.yaml.
mkdir -p "$opt/defaults"
cp packaging/debian/cdr.yaml "$opt/defaults/cdr.yaml"
install -m 0755 packaging/debian/cdrctl "$root/usr/bin/cdrctl"

mib="$(find services modules packaging -name 'IMP-CDR-MIB*' -type f 2>/dev/null | head -n 1)"
if [ -n "$mib" ]; then
  mkdir -p "$root/usr/share/snmp/mibs"
  cp "$mib" "$root/usr/share/snmp/mibs/IMP-CDR-MIB.txt"
else
  echo "build-deb.sh: no IMP-CDR-MIB file in the tree; the package ships without it" >&2
fi

# The public key `cdrctl firmware verify` and `apply` check bundles with (firmware.publicKey in cdr.yaml),
# and release-key.json, which records whether it is the release or a development key.
signing_key="$(node dist/firmware/ship-key.js "$opt/firmware")"

mkdir -p "$root/DEBIAN"
installed_kib="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_kib/" \
  packaging/debian/control >"$root/DEBIAN/control"
cp packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"

mkdir -p "$output_dir"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$output_dir/$package" >/dev/null
echo "$output_dir/$package"

if [ "$bundle" = true ]; then
  bundle_path="$output_dir/imp-cdr_${version}_${arch}.bundle"
  node dist/services/cdrctl/main.js firmware build --deb "$output_dir/$package" --key "$signing_key" --out "$bundle_path" >&2
  echo "$bundle_path"
fi
