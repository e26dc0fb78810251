import Foundation

/// Where each adaptable module sits in its model: its block and its kind label, as the backbone set them
/// when it built the model. Runs store the map in results.json (`modules`), so rank tables and reports
/// group modules by layer and kind without knowing a model family.
public struct ModuleMap: Sendable, Equatable {
    /// Module path → block index.
    public var layers: [String: Int]
    /// Module path → kind label (`query`, `attn.out`, …).
    public var kinds: [String: String]
    /// Kind labels in the order tables show them.
    public var kindOrder: [String]

    public init(layers: [String: Int], kinds: [String: String], kindOrder: [String]) {
        self.layers = layers
        self.kinds = kinds
        self.kindOrder = kindOrder
    }

    /// The map of every adaptable linear of `backbone`.
    public init(backbone: any Backbone) {
        var layers: [String: Int] = [:]
        var kinds: [String: String] = [:]
        for linear in backbone.adaptableLinears {
            if let layer = linear.layer { layers[linear.path] = layer }
            if let kind = linear.kind { kinds[linear.path] = kind }
        }
        self.init(layers: layers, kinds: kinds, kindOrder: backbone.moduleKinds)
    }

    /// A map guessed from paths alone, for runs written before results.json held one: the first whole-number
    /// component is the block, the rest of the path after it the kind, shortened as a registered family labels it
    /// (`attention.self.query` → `query`) and ordered as that family's table.
    public init(guessingFrom paths: some Sequence<String>) {
        let known = BackboneFamilies.all.flatMap(\.moduleKinds)
        var layers: [String: Int] = [:]
        var kinds: [String: String] = [:]
        var seen: Set<String> = []
        for path in paths {
            let parts = path.split(separator: ".")
            guard let index = parts.firstIndex(where: { Int($0) != nil }), let layer = Int(parts[index]) else {
                continue
            }
            let rest = parts[(index + 1)...].joined(separator: ".")
            let kind = known.first { $0.path == rest }?.kind ?? rest
            layers[path] = layer
            kinds[path] = kind
            seen.insert(kind)
        }
        var order: [String] = []
        for entry in known where seen.contains(entry.kind) && !order.contains(entry.kind) { order.append(entry.kind) }
        order += seen.subtracting(order).sorted()
        self.init(layers: layers, kinds: kinds, kindOrder: order)
    }

    /// The map results.json holds (`{"kinds": [...], "modules": {path: {"layer": n, "kind": k}}}`), or nil.
    public init?(json: Any?) {
        guard let object = json as? [String: Any], let order = object["kinds"] as? [String],
            let modules = object["modules"] as? [String: Any]
        else { return nil }
        var layers: [String: Int] = [:]
        var kinds: [String: String] = [:]
        for (path, value) in modules {
            guard let entry = value as? [String: Any] else { continue }
            if let layer = (entry["layer"] as? NSNumber)?.intValue { layers[path] = layer }
            if let kind = entry["kind"] as? String { kinds[path] = kind }
        }
        self.init(layers: layers, kinds: kinds, kindOrder: order)
    }

    /// The map a run stored (results.json's `modules`), or one guessed from `paths` when the run predates it.
    public init(stored: Any?, paths: some Sequence<String>) {
        self = ModuleMap(json: stored) ?? ModuleMap(guessingFrom: paths)
    }

    /// The form `init(json:)` reads.
    public var json: [String: Any] {
        var modules: [String: Any] = [:]
        for path in Set(layers.keys).union(kinds.keys) {
            var entry: [String: Any] = [:]
            if let layer = layers[path] { entry["layer"] = layer }
            if let kind = kinds[path] { entry["kind"] = kind }
            modules[path] = entry
        }
        return ["kinds": kindOrder, "modules": modules]
    }

    /// The block and kind of `path`, when both are known.
    public func place(_ path: String) -> (layer: Int, kind: String)? {
        guard let layer = layers[path], let kind = kinds[path] else { return nil }
        return (layer, kind)
    }

    /// `L5 query` for a placed module, else the path.
    public func shortName(_ path: String) -> String {
        place(path).map { "L\($0.layer) \($0.kind)" } ?? path
    }

    /// Position of a kind in the table order (unknown kinds last).
    public func kindRank(_ kind: String) -> Int {
        kindOrder.firstIndex(of: kind) ?? kindOrder.count
    }

    /// Paths by block, then kind in table order; modules without a place after them, by name.
    public func sorted(_ paths: some Sequence<String>) -> [String] {
        paths.sorted { first, second in
            switch (place(first), place(second)) {
            case let (a?, b?):
                if a.layer != b.layer { return a.layer < b.layer }
                if a.kind != b.kind { return kindRank(a.kind) < kindRank(b.kind) }
                return first < second
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return first < second
            }
        }
    }
}
