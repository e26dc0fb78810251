import Methods
import Models
import Testing

@testable import Training

/// The conformance matrices' kill-and-resume check: a second run is stopped between checkpoints (as kill -9 would:
/// at step 17, the last checkpoint at 14), resumed into a fresh model whose trainable parameters were disturbed (only
/// the checkpoint can make them right), and must end bit-identical to the uninterrupted run `trainer`: parameters,
/// ranks and every other checkpointed state (importance EMAs, masks, sampler weights, Adam moments), which a
/// forgotten piece can leave the parameters equal to for a while.
func expectResumeIsExact(
    _ name: String, uninterrupted trainer: Trainer, build: () throws -> (TaskModel, TuningMethod),
    start: (TaskModel, TuningMethod) throws -> Trainer
) throws {
    let (stoppedModel, stoppedMethod) = try build()
    let stopped = try start(stoppedModel, stoppedMethod)
    try stopped.run(shouldStop: { stopped.step == 17 })
    let (resumedModel, resumedMethod) = try build()
    let resumed = try start(resumedModel, resumedMethod)
    for parameter in resumedModel.params.trainable { for i in 0..<parameter.count { parameter.value[i] += 0.5 } }
    try resumed.run(resume: true)
    #expect(resumed.step == trainer.step)
    var worst: Float = 0
    for (p, q) in zip(trainer.model.params.trainable, resumedModel.params.trainable) {
        #expect(p.name == q.name)
        for i in 0..<p.count { worst = max(worst, abs(p.value[i] - q.value[i])) }
    }
    #expect(worst == 0, "\(name): resumed run differs from the uninterrupted one by \(worst)")
    #expect(resumedMethod.ranks == trainer.method.ranks, "\(name): ranks after resume")
    #expect(trainer.stateDifferences(resumed) == [], "\(name): checkpointed state after resume")
}
