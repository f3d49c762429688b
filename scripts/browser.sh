# Sourced by scripts/test: the inspector page's tests drive Debian's Chromium through
# chromedriver. Install both when they are missing and this user may (root with apt-get, as on
# CI); otherwise say what is needed (the browser tests then fail with the same advice).
ensure_browser() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver for the browser tests (apt-get)" >&2
    apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || {
      apt-get update >/dev/null 2>&1
      apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null
    }
  else
    echo "note: the inspector page tests need Chromium and chromedriver" \
         "(Debian: apt-get install chromium chromium-driver)" >&2
  fi
}
