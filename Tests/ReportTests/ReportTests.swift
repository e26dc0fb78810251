import FineTuning
import Foundation
import Models
import Testing
@testable import Report

/// The pages from hand-made run directories: every section there, the data's text escaped (a tweet can
/// hold markup), and nothing that loads from anywhere.
@Suite struct ReportTests {
    func write(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// A finished TsqLoRA-like run on a 5-row CSV whose text contains markup.
    func makeRun(_ name: String) throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rankwise-report-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: d)
        try write(d + "/data.csv", "text,label\n<script>alert(1)</script> evil,neg\nplain good,pos\nfine & dandy,pos\nso bad,neg\nok then,pos\n")
        try write(d + "/run/run.json", """
            {"data": {"train": "\(d)/data.csv", "devFraction": 0, "testFraction": 0, "textColumn": "text", "labelColumn": "label", "model": "minilm",
                      "dedup": false, "flipLabels": 0, "output": "\(d)/run", "regression": false, "splitSeed": 42},
             "training": {"lr": 0.005}, "method": "tsqlora", "method_config": {"note": "</pre><b>x</b>"}}
            """)
        let m = "encoder.layer.0.attention.self.query", k = "encoder.layer.1.output.dense"
        try write(d + "/run/metrics.jsonl", """
            {"event":"train","step":10,"loss":1.1,"lr":0.001}
            {"event":"initial_ranks","step":2,"ranks":{"\(m)":3,"\(k)":1},"sensitivity":{"\(m)":2e-5,"\(k)":1e-5}}
            {"event":"ranks","step":12,"ranks":{"\(m)":2,"\(k)":2}}
            {"event":"train","step":20,"loss":0.9,"lr":0.0005}
            {"event":"eval","step":20,"dev_accuracy":0.6,"dev_macro_f1":0.55,"dev_loss":0.8}
            """)
        try write(d + "/run/results.json", """
            {"method":"tsqlora","steps":20,"ranks":{"\(m)":1,"\(k)":3},"test_accuracy":0.625,"test_macro_f1":0.5,
             "test_confusion":[[3,1],[2,2]],"label_names":["neg","pos"],"trainable_parameters":1234}
            """)
        try write(d + "/run/final/quality.csv", """
            example,scored_at_step,quality,grad_norm,reduction,alignment,loss,probability
            0,20,-2.5,1.4,0.1,-0.9,2.0,0.1
            1,20,1.5,0.2,0.0,0.8,0.1,0.3
            2,5,0,0.4,0,0.1,0.3,0.2
            3,10,0.25,0.5,0.0,0.4,0.5,0.2
            4,20,0.75,0.3,0.0,0.6,0.2,0.2
            """)
        return d + "/run"
    }

    @Test func runPageHasEverySectionAndEscapesTheData() throws {
        let dir = try makeRun("full")
        let html = try RunReport.html(runDirectory: dir)
        for section in ["Rankwise run run", "Loss", "Dev metrics", "Rank per module over training steps", "Final rank per layer and module type (total 4)",
                        "Warm-up sensitivity", "Data quality (TsqLoRA)", "Lowest quality", "Highest quality", "Confusion matrix", "Configuration (run.json)"] {
            #expect(html.contains(section), "missing \(section)")
        }
        #expect(!html.contains("<script"), "unescaped markup from the data")
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; evil") && html.contains("fine &amp; dandy"))
        #expect(!html.contains("</pre><b>x</b>"))  // the configuration is escaped too
        #expect(html.contains("5 of 5 examples scored"))
        // The lowest-quality row is training example 0 as the run indexed it (after the seeded split): its file line and text.
        var o = DataOptions(); o.train = dir.replacingOccurrences(of: "/run", with: "/data.csv"); o.devFraction = 0; o.testFraction = 0
        let e = try FineTuneData.sets(o, print: { _ in }).train.examples[0]
        let lowest = try #require(html.range(of: "Lowest quality"))
        let row = try #require(html[lowest.upperBound...].range(of: "<td class=\"l\">\(e.line)</td><td class=\"\">-2.50</td>"))
        #expect(html[row.upperBound...].prefix(400).contains(SVG.escape(e.text)))
        // Nothing loads from anywhere.
        for bad in ["src=", "href=", "url(", "@import", "<link", "<img", "<iframe"] { #expect(!html.contains(bad), "\(bad)") }
    }

    @Test func aRunWithFixedRanksAndNoResultsYetStillRenders() throws {
        let dir = try makeRun("partial")
        try FileManager.default.removeItem(atPath: dir + "/results.json")
        try write(dir + "/final/quality.csv", "example,scored_at_step,quality\n0,0,0\n1,0,0\n")  // never scored (step 0)
        try write(dir + "/metrics.jsonl", "{\"event\":\"train\",\"step\":10,\"loss\":1.1,\"lr\":0.001}\nnot json\n")
        let html = try RunReport.html(runDirectory: dir)
        #expect(html.contains("unfinished: no results.json yet") && html.contains("0 of 2 examples scored") && html.contains("Distribution of quality scores: no data"))
        #expect { try RunReport.html(runDirectory: "/no/such/run") } throws: { "\($0)".contains("no run.json") }
    }

    @Test func svgPieces() {
        #expect(SVG.escape("<a href='x'>&\"</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;")
        #expect(SVG.ramp(0) == "#f7fbff" && SVG.ramp(1) == "#08306b" && SVG.ramp(.nan) == SVG.ramp(0))
        let h = SVG.histogram([0, 0, 0, 1, 2, 2], bins: 2, title: "h", x: "q")
        #expect(h.contains("<title>3 examples in [0, 1)") && h.contains("<title>3 examples in [1, 2)"))  // the top edge belongs to the last bin
        let hm = SVG.heatmap(rows: ["a", "b"], columns: ["x"], values: [[1], [nil]], lo: 0, hi: 2, title: "t", labels: true)
        #expect(hm.components(separatedBy: "<rect").count == 2)  // one cell drawn, the empty one left out
        #expect(SVG.lineChart([], title: "empty", x: "x", y: "y").contains("no data"))
    }

    /// The backbone places its modules when it builds them; runs store that map and reports read it back.
    @Test func moduleMapFromTheBackboneAndBack() throws {
        let config = BertConfig(hiddenSize: 8, numHeads: 2, numLayers: 2, intermediateSize: 16, vocabSize: 30, maxPositions: 12)
        let backbone = try BertModel(config: config, weights: RandomWeights(seed: 3), withPooler: true)
        let map = ModuleMap(backbone: backbone)
        #expect(map.place("encoder.layer.1.attention.output.dense")! == (1, "attn.out"))
        #expect(map.place("pooler.dense") == nil)
        #expect(map.kindOrder == ["query", "key", "value", "attn.out", "inter", "output"])
        let paths = ["encoder.layer.1.output.dense", "encoder.layer.0.intermediate.dense", "encoder.layer.0.attention.self.query", "other"]
        #expect(map.sorted(paths) == ["encoder.layer.0.attention.self.query", "encoder.layer.0.intermediate.dense",
                                      "encoder.layer.1.output.dense", "other"])
        #expect(map.shortName("encoder.layer.0.intermediate.dense") == "L0 inter")
        let stored = try JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: map.json))
        #expect(ModuleMap(json: stored) == map)
        #expect(ModuleMap(json: ["kinds": 3]) == nil)
        // An older run's results.json has no map: block and kind are read from the paths.
        // LLaMA is a registered family: its paths get its short kinds; an unknown module keeps its path's tail.
        let guessed = ModuleMap(guessingFrom: ["model.layers.3.self_attn.q_proj", "lm_head", "model.layers.2.mixer.x"])
        #expect(guessed.place("model.layers.3.self_attn.q_proj")! == (3, "q_proj"))
        #expect(guessed.place("model.layers.2.mixer.x")! == (2, "mixer.x"))
        #expect(guessed.place("lm_head") == nil)
        // A registered family's paths get its short kinds, in its table order.
        let bertGuess = ModuleMap(guessingFrom: ["encoder.layer.1.output.dense", "encoder.layer.0.attention.self.query",
                                                 "encoder.layer.0.extra.proj"])
        #expect(bertGuess.place("encoder.layer.1.output.dense")! == (1, "output"))
        #expect(bertGuess.place("encoder.layer.0.attention.self.query")! == (0, "query"))
        #expect(bertGuess.kindOrder == ["query", "output", "extra.proj"])
    }
}
