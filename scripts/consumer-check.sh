#!/usr/bin/env bash
# Another package can depend on Rankwise by version: SwiftPM refuses version-pinned dependencies whose
# product targets use unsafeFlags (branch/revision pins and local paths are let through, so this tags
# a throwaway clone of the committed tree and depends on that tag). Builds a tiny app that runs the
# library's option parsing.   usage: scripts/consumer-check.sh [REPO_DIR]
set -euo pipefail
REPO=$(cd "${1:-.}" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
git clone -q "$REPO" "$W/rankwise"
git -C "$W/rankwise" tag 0.0.1
mkdir -p "$W/app/Sources/App"
cat > "$W/app/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "App",
    dependencies: [.package(url: "file://$W/rankwise", exact: "0.0.1")],
    targets: [.executableTarget(name: "App", dependencies: [.product(name: "Rankwise", package: "rankwise")])]
)
SWIFT
cat > "$W/app/Sources/App/main.swift" <<'SWIFT'
import FineTuning
let o = try FineTuneOptions.from([("method", "elalora"), ("max-rank", "12"), ("train", "x.csv")])
print("consumer ok: method \(o.method), options \(o.methodOptions)")
SWIFT
cd "$W/app"
swift build -c release 2>&1 | grep -E "error|warning: .*unsafe" && { echo "consumer-check: a package depending on Rankwise 0.0.1 does not build" >&2; exit 1; }
./.build/release/App
