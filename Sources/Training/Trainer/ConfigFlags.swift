import Foundation
import Layers
import Tasks
import Tensors

/// The command-line flags of a run (`seqlab train`, `seqlab config show`), generated from the declared settings:
///
///     --batch-size 64, --lr 3e-3, ...      trainer settings (TrainConfig.settings)
///     --d-model 128, --n-layers 4, ...     model settings (ModelConfig.settings)
///     --layer.NAME VALUE                   an option of the run's layer (its factory's declarations)
///     --task.NAME VALUE                    an option of the run's task
///     --NAME VALUE                         a layer or task option whose name no trainer or model setting takes and
///                                          only one of the two declares (--n-h 2, --seq-len 128)
///
/// `--name=value` works too; a boolean flag without a value means true. Each value is checked against its
/// declaration on the spot, and errors name the flag.
public enum ConfigFlags {
    /// What a flag sets.
    enum Target {
        case trainer(OptionSpec), model(OptionSpec), layer(OptionSpec), task(OptionSpec)
        var spec: OptionSpec {
            switch self { case .trainer(let s), .model(let s), .layer(let s), .task(let s): return s }
        }
    }

    /// Applies the flags in `arguments` to the config object (the JSON object of a config file: `task` and
    /// `model.layer` already set), checking each value.
    /// Returns the key paths the flags set ("model.d_model").
    @discardableResult
    public static func apply(_ arguments: [String], to object: inout [String: Any]) throws -> Set<String> {
        guard let task = object["task"] as? String, let layer = (object["model"] as? [String: Any])?["layer"] as? String else {
            throw SequenceLabError("train: give --task and --layer (or --config FILE)")
        }
        let layerSpecs = try LayerRegistry.factory(named: layer).options
        let taskSpecs = try TaskRegistry.factory(named: task).options
        var set = Set<String>()
        for (flag, value) in try pairs(arguments) {
            let target = try self.target(of: flag, layer: layer, layerSpecs: layerSpecs, task: task, taskSpecs: taskSpecs)
            let spec = target.spec
            guard let value = value ?? (spec.kind == .boolean ? "true" : nil) else {
                throw SequenceLabError("flag --\(flag) needs a value (\(spec.typeDescription))")
            }
            try spec.check(value, owner: "flag --\(flag)", label: spec.name)
            switch target {
            case .trainer: object[spec.name] = jsonValue(value, spec)
            case .model: object[path: ["model"]][spec.name] = jsonValue(value, spec)
            case .layer: object[path: ["model", "layer_options"]][spec.name] = value
            case .task: object[path: ["task_options"]][spec.name] = value
            }
            switch target {
            case .trainer: set.insert(spec.name)
            case .model: set.insert("model." + spec.name)
            case .layer: set.insert("model.layer_options." + spec.name)
            case .task: set.insert("task_options." + spec.name)
            }
        }
        return set
    }

    /// ["--n-h", "2", "--allow-neg-eigval"] -> [("n-h", "2"), ("allow-neg-eigval", nil)].
    static func pairs(_ args: [String]) throws -> [(String, String?)] {
        var pairs: [(String, String?)] = []
        var i = 0
        while i < args.count {
            let arg = args[i]
            guard arg.hasPrefix("--"), arg.count > 2 else { throw SequenceLabError("unexpected argument '\(arg)' (settings are --name value)") }
            var name = String(arg.dropFirst(2))
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            } else if i + 1 < args.count, !args[i + 1].hasPrefix("--") {
                value = args[i + 1]
                i += 1
            }
            pairs.append((name, value))
            i += 1
        }
        return pairs
    }

    /// The setting `flag` names (dashes and underscores alike).
    static func target(of flag: String, layer: String, layerSpecs: [OptionSpec], task: String, taskSpecs: [OptionSpec]) throws -> Target {
        let name = flag.replacingOccurrences(of: "-", with: "_")
        func find(_ specs: [OptionSpec], _ n: String) -> OptionSpec? { specs.first { $0.name == n } }
        /// The option NAME of `--OWNER.NAME`, or a one-line error listing the owner's options.
        func prefixed(_ owner: String, _ ownerName: String, _ specs: [OptionSpec]) throws -> OptionSpec {
            let option = String(name.dropFirst(owner.count + 1))
            guard let s = find(specs, option) else {
                throw SequenceLabError("flag --\(flag): \(owner) \(ownerName) has no option '\(option)'"
                                       + suggestion(option, among: specs.map(\.name), prefix: owner + ".")
                                       + " (options: \(specs.map(\.name).joined(separator: ", ")))")
            }
            return s
        }
        if name.hasPrefix("layer.") { return .layer(try prefixed("layer", layer, layerSpecs)) }
        if name.hasPrefix("task.") { return .task(try prefixed("task", task, taskSpecs)) }
        if let s = find(TrainConfig.settings, name) { return .trainer(s) }
        if let s = find(ModelConfig.settings, name) { return .model(s) }
        switch (find(layerSpecs, name), find(taskSpecs, name)) {
        case (let l?, nil): return .layer(l)
        case (nil, let t?): return .task(t)
        case (.some, .some):
            throw SequenceLabError("flag --\(flag): both layer \(layer) and task \(task) take '\(name)'; write --layer.\(name) or --task.\(name)")
        case (nil, nil):
            let known = (TrainConfig.settings + ModelConfig.settings).map { $0.name.replacingOccurrences(of: "_", with: "-") }
                + layerSpecs.map { "layer." + $0.name } + taskSpecs.map { "task." + $0.name }
            throw SequenceLabError("unknown flag --\(flag)" + suggestion(flag, among: known.map { $0.replacingOccurrences(of: "_", with: "-") })
                                   + " (seqlab train --help lists the settings; seqlab list the layer and task options)")
        }
    }

    /// A checked flag value as the JSON value a config file would hold.
    static func jsonValue(_ text: String, _ spec: OptionSpec) -> Any {
        if text == spec.unsetWord { return NSNull() }
        switch spec.kind {
        case .integer: return Int(text)!
        case .number: return Double(text)!
        case .boolean: return Options.parseBool(text)!
        case .text where spec.name == "no_decay":
            return ParameterRole.list(text).map { $0.map(\.rawValue) } ?? text
        default: return text
        }
    }

    /// The trainer and model settings, one line each, for `--help`.
    public static var help: String {
        func lines(_ specs: [OptionSpec], _ heading: String) -> String {
            heading + "\n" + specs.map { s in
                "  --\(s.name.replacingOccurrences(of: "_", with: "-")) (\(s.typeDescription); default \(s.defaultValue)): \(s.help)"
            }.joined(separator: "\n")
        }
        return lines(TrainConfig.settings, "Trainer settings:") + "\n" + lines(ModelConfig.settings, "Model settings:") + "\n"
            + "Layer and task options (seqlab list): --layer.NAME VALUE and --task.NAME VALUE, or --NAME VALUE where the name is"
            + " no trainer or model setting and only one of the two takes it. A boolean flag without a value means true."
    }
}

extension Dictionary where Key == String, Value == Any {
    /// The nested object at `path`, created when absent (for setting one key inside it).
    public subscript(path path: [String]) -> [String: Any] {
        get {
            var current: [String: Any] = self
            for key in path { current = current[key] as? [String: Any] ?? [:] }
            return current
        }
        set {
            guard let first = path.first else { self = newValue; return }
            var child = self[first] as? [String: Any] ?? [:]
            child[path: Array(path.dropFirst())] = newValue
            self[first] = child
        }
    }
}
