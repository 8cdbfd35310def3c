#!/usr/bin/env bash
# Installs a tool `make lint`, the tests or `make bench` need when it is missing:
# `tools.sh promtool|prometheus|chromium|wrk`. The first two come from Debian's `prometheus`
# package (its server must not start, or hold :9090, by itself); `chromium` is Debian's browser,
# which the console's browser tests drive headless (never a browser build downloaded by
# Playwright); `wrk` is the HTTP load generator of the benchmark's API reads.
set -euo pipefail

package_of() {
  case "$1" in
    promtool | prometheus) echo prometheus ;;
    wrk) echo wrk ;;
    chromium) echo chromium ;;
    *) echo "usage: tools.sh promtool|prometheus|chromium|wrk" >&2; exit 2 ;;
  esac
}

tool="${1:-}"
package="$(package_of "$tool")"
command -v "$tool" >/dev/null && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "tools: ERROR: $tool is missing; install it as root: apt-get install --no-install-recommends $package" >&2
  exit 1
fi

echo "tools: installing $tool (Debian package $package)" >&2
# Debian starts a packaged service at install unless policy-rc.d says no (101); a container
# usually has one already, a host does not: lend one for the install only.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
install=(apt-get -y -qq install --no-install-recommends "$package")
"${install[@]}" >/dev/null 2>&1 ||
  { apt-get -qq update >/dev/null && "${install[@]}" >/dev/null; } ||
  { echo "tools: ERROR: could not install the Debian package $package" >&2; exit 1; }
# Under systemd the unit is still enabled for the next boot: Tally's tools are not a service.
if [[ $package == prometheus && -d /run/systemd/system ]]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v "$tool" >/dev/null || { echo "tools: ERROR: $package did not install $tool" >&2; exit 1; }
