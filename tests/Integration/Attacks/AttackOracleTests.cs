using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Tests.Oracle;
using T = System.Collections.Generic.Dictionary<string, (int[] Shape, float[] Data)>;

namespace ModelGuardian.Tests.Attacks;

/// <summary>
/// One whole attack iteration against PyTorch (float64): the attack runs in C# with its random draws traced, the oracle
/// replays the iteration from the same initial weights, draws and victim answers, and the queries, the losses and every
/// parameter and running statistic after the iteration must agree.
/// </summary>
[Collection(OracleCollection.Name)]
public sealed class AttackOracleTests(TorchOracle oracle)
{
    /// <summary>Keeps every query batch and its answers.</summary>
    private sealed class RecordingClient(IVictimClient inner) : IVictimClient
    {
        public List<(float[] Images, double[][] Answers)> Batches { get; } = new();
        public int Classes => inner.Classes;

        public async Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
        {
            var answers = await inner.QueryAsync(batch, cancellationToken);
            Batches.Add((batch.Values.ToArray(), answers.Select(a => a.Probabilities.ToArray()).ToArray()));
            return answers;
        }
    }

    /// <summary>
    /// One attack against the tiny random victim with its draws traced, and the oracle's inputs: its networks' tensors
    /// before the run (under "g:", "s:" and what a test adds), then the draws and answers a test names.
    /// </summary>
    private sealed class TracedRun : IDisposable
    {
        private readonly CpuKernels _kernels = new();
        private readonly Network _victim;

        public TracedRun(AttackKind kind, AttackOptions options)
        {
            _victim = TinyAttack.Victim(_kernels);
            Client = new RecordingClient(new DefendedVictimClient(new VictimClassifier(_victim), new NoDefense()));
            Options = options;
            Attack = TinyAttack.Create(_kernels, kind, options);
            Attack.Trace = (name, values) => Trace.Add((name, values.ToArray()));
            AddTensors("g:", Attack.GeneratorNetwork.Export());
            AddTensors("s:", Attack.Student.Export());
        }

        public DataFreeAttack Attack { get; }
        public AttackOptions Options { get; }
        public RecordingClient Client { get; }
        public List<(string Name, float[] Values)> Trace { get; } = new();
        public T Inputs { get; } = new() { ["x"] = ([1], [0f]) };

        public void AddTensors(string prefix, TensorSet set)
        {
            foreach (var (name, t) in set.Tensors) Inputs[prefix + name] = (t.Shape, t.Data);
        }

        public void AddTrace(string input, int index, params int[] shape) => Inputs[input] = (shape.Length > 0 ? shape : [Trace[index].Values.Length], Trace[index].Values);

        public void AddAnswers(string input, int batch) => Inputs[input] = ([Client.Batches[batch].Answers.Length, TinyAttack.Classes], Flatten(Client.Batches[batch].Answers));

        public Task RunAsync() => Attack.RunAsync(Client, TinyAttack.TestSet(4));

        /// <summary>What every attack op reads besides its tensors; a test adds its own.</summary>
        public Dictionary<string, object> Parameters()
        {
            var norm = Attack.Student.Architecture.EffectiveNormalization;
            return new()
            {
                ["shift"] = Options.ImageShift, ["classes"] = TinyAttack.Classes, ["diversity"] = Options.DiversityWeight,
                ["generator_width"] = Options.GeneratorWidth, ["student_width"] = Options.StudentWidth,
                ["generator_lr"] = Options.GeneratorLearningRate, ["student_lr"] = Options.StudentLearningRate,
                ["mean"] = norm.Mean, ["std"] = norm.Std,
            };
        }

        public void Dispose()
        {
            Attack.Dispose();
            _victim.Dispose();
            _kernels.Dispose();
        }
    }

    private static float[] Flatten(double[][] rows) => rows.SelectMany(r => r.Select(v => (float)v)).ToArray();

    /// <summary>A network's gradient as traced (its parameters concatenated in store order) against the oracle's, 1e-3 relative L2.</summary>
    private static void AssertGradient(Dictionary<string, (int[] Shape, float[] Data)> expected, string prefix, TrainableGraph network, float[] traced, string what)
        => TestUtil.AssertRelativeL2(network.Parameters.Trainable.SelectMany(p => expected[prefix + p.Name].Data).ToArray(), traced, 1e-3, what);

    /// <summary>Every tensor of a network after the iteration (parameters and running statistics) against the oracle's.</summary>
    private static void AssertTensors(Dictionary<string, (int[] Shape, float[] Data)> expected, string prefix, TensorSet actual, double tolerance, string what)
    {
        foreach (var (name, t) in actual.Tensors) TestUtil.AssertClose(expected[prefix + name].Data, t.Data, tolerance, $"{what} {name}");
    }

    /// <summary>
    /// DFME and MAZE with their recipes (batches cut to 4 and 2, replay off, widths 4 and 8): the generator's zeroth-order
    /// Adam step and the student's SGD steps (DFME one, MAZE five). Each step is checked against the oracle, which then goes
    /// on from our values: the estimate divides loss differences by ε = 1e-3, and Adam's first step is ±lr·sign(g), so
    /// float32 rounding would otherwise decide the sign of small gradients and everything after. Tolerances: queries and
    /// zeroth-order losses 1e-5 (absolute, of the largest); the slopes (loss differences over ε: a unit step of 1e-3 in
    /// 1,024 dimensions moves a loss by about as much as float32 rounding does, 2.6 % relative L2 for DFME here) 0.1
    /// relative L2; the generator's gradient from our slopes 1e-3 relative L2; parameters, running statistics and the
    /// later queries 1e-5 of the largest (the student 1e-4: a ResNet's batch-norm backward and SGD steps at lr 0.1).
    /// </summary>
    [Theory]
    [InlineData(AttackKind.Dfme, 4, "l1")]
    [InlineData(AttackKind.Maze, 2, "kl")]
    public async Task OneZerothOrderIterationMatchesPyTorch(AttackKind kind, int n, string loss)
    {
        var recipe = AttackOptions.For(kind, budget: 1);
        int m = recipe.Directions, steps = recipe.StudentSteps;
        using var run = new TracedRun(kind, recipe with
        {
            Budget = n * (m + 1) + steps * n, BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1,
        });
        await run.RunAsync();

        var trace = run.Trace;
        Assert.Equal(new[] { "noise", "directions", "losses", "slopes", "generator-gradient" }.Concat(Enumerable.Repeat("noise", steps)), trace.Select(d => d.Name));
        Assert.Equal(1 + steps, run.Client.Batches.Count);
        run.AddTrace("z1", 0, n, 64);
        run.AddTrace("u", 1, n, m, 32 * 32);
        run.AddTrace("caller_slopes", 3);
        run.AddTrace("caller_generator_gradient", 4);
        run.AddAnswers("answers1", 0);
        for (int s = 0; s < steps; s++)
        {
            run.AddTrace($"z2_{s}", 5 + s, n, 64);
            run.AddAnswers($"answers2_{s}", 1 + s);
        }
        var parameters = run.Parameters();
        (parameters["n"], parameters["m"], parameters["loss"], parameters["student_steps"], parameters["epsilon"]) = (n, m, loss, steps, run.Options.Epsilon);
        var expected = oracle.Run("zeroth_order_iteration", parameters, run.Inputs, float64: true);

        TestUtil.AssertClose(expected["images1"].Data, run.Client.Batches[0].Images, 1e-5, "the zeroth-order queries");
        TestUtil.AssertClose(expected["losses"].Data, trace[2].Values, 1e-5, "the zeroth-order losses");
        TestUtil.AssertRelativeL2(expected["slopes"].Data, trace[3].Values, 0.1, "the zeroth-order slopes");
        AssertGradient(expected, "gg:", run.Attack.GeneratorNetwork, trace[4].Values, "the generator's gradient");
        AssertTensors(expected, "g:", run.Attack.GeneratorNetwork.Export(), 1e-5, "generator, after its step and the fresh batches:");
        for (int s = 0; s < steps; s++)
            TestUtil.AssertClose(expected[$"images2_{s}"].Data, run.Client.Batches[1 + s].Images, 1e-5, $"the student's fresh queries, step {s + 1}");
        AssertTensors(expected, "s:", run.Attack.Student.Export(), 1e-4, "student, after its steps:");
    }

    /// <summary>
    /// DisGUIDE and Dual Student with their recipes (batch cut to 4, replay off, widths 4 and 8): the generator's white-box
    /// step through both students and each student's SGD step on a fresh batch. Tolerances: the generator's gradient 1e-3
    /// relative L2 (through two ResNets' batch-norm backward in float32); the oracle's Adam step then takes our gradient,
    /// as above; parameters, running statistics and queries 1e-5 of the largest, the students 1e-4.
    /// </summary>
    [Theory]
    [InlineData(AttackKind.Disguide)]
    [InlineData(AttackKind.DualStudent)]
    public async Task OneTwoStudentIterationMatchesPyTorch(AttackKind kind)
    {
        const int n = 4;
        var recipe = AttackOptions.For(kind, budget: 1);
        int steps = recipe.StudentSteps;
        using var run = new TracedRun(kind, recipe with { Budget = steps * n, BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1 });
        var attack = (DisguideAttack)run.Attack;
        run.AddTensors("s2:", attack.SecondStudent.Export());
        await run.RunAsync();

        var trace = run.Trace;
        Assert.Equal(new[] { "noise", "generator-gradient" }.Concat(Enumerable.Repeat("noise", steps)), trace.Select(d => d.Name));
        Assert.Equal(steps, run.Client.Batches.Count);
        run.AddTrace("z1", 0, n, 64);
        run.AddTrace("caller_generator_gradient", 1);
        for (int s = 0; s < steps; s++)
        {
            run.AddTrace($"z2_{s}", 2 + s, n, 64);
            run.AddAnswers($"answers2_{s}", s);
        }
        var parameters = run.Parameters();
        parameters["student_steps"] = steps;
        var expected = oracle.Run("two_student_iteration", parameters, run.Inputs, float64: true);

        AssertGradient(expected, "gg:", attack.GeneratorNetwork, trace[1].Values, "the generator's gradient");
        AssertTensors(expected, "g:", attack.GeneratorNetwork.Export(), 1e-5, "generator, after its step and the fresh batches:");
        for (int s = 0; s < steps; s++)
            TestUtil.AssertClose(expected[$"images2_{s}"].Data, run.Client.Batches[s].Images, 1e-5, $"the students' fresh queries, step {s + 1}");
        AssertTensors(expected, "s:", attack.Student.Export(), 1e-4, "student s:, after its steps:");
        AssertTensors(expected, "s2:", attack.SecondStudent.Export(), 1e-4, "student s2:, after its steps:");
    }

    /// <summary>
    /// DaST with its recipe (batch cut to 4, replay off, widths 4 and 8): the label-coded generator's white-box step
    /// through the student and the student's step on the same answered batch. Tolerances as for the two-student attacks.
    /// </summary>
    [Fact]
    public async Task OneDastIterationMatchesPyTorch()
    {
        const int n = 4;
        using var run = new TracedRun(AttackKind.Dast, AttackOptions.For(AttackKind.Dast, budget: n) with
        {
            BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1,
        });
        await run.RunAsync();

        var trace = run.Trace;
        Assert.Equal(["noise", "labels", "generator-gradient"], trace.Select(d => d.Name));
        Assert.Single(run.Client.Batches);
        Assert.True(trace[1].Values.Distinct().Count() > 1, "the codes should name more than one class");
        run.AddTrace("z", 0, n, 64);
        run.AddTrace("labels", 1);
        run.AddTrace("caller_generator_gradient", 2);
        run.AddAnswers("answers", 0);
        var expected = oracle.Run("dast_iteration", run.Parameters(), run.Inputs, float64: true);

        TestUtil.AssertClose(expected["images"].Data, run.Client.Batches[0].Images, 1e-5, "the queries");
        AssertGradient(expected, "gg:", run.Attack.GeneratorNetwork, trace[2].Values, "the generator's gradient");
        AssertTensors(expected, "g:", run.Attack.GeneratorNetwork.Export(), 1e-5, "generator, after its step:");
        AssertTensors(expected, "s:", run.Attack.Student.Export(), 1e-4, "student, after its step:");
    }

    /// <summary>
    /// DFMS-HL with its recipe after pre-training (batch cut to 4, replay off, widths 4 and 8): the discriminator's step, the
    /// generator's step through the discriminator and the student (class diversity), and the student's top-1 step.
    /// Tolerances: both gradients 1e-3 relative L2 (the oracle's Adam steps take ours, as above); parameters, running
    /// statistics and queries 1e-5 of the largest, the student 1e-4.
    /// </summary>
    [Fact]
    public async Task OneDfmsIterationMatchesPyTorch()
    {
        const int n = 4;
        using var run = new TracedRun(AttackKind.DfmsHl, AttackOptions.For(AttackKind.DfmsHl, budget: n) with
        {
            BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1, ProxyPretrainSteps = 0,
        });
        var attack = (DfmsHlAttack)run.Attack;
        run.AddTensors("d:", attack.Discriminator.Export());
        await run.RunAsync();

        var trace = run.Trace;
        Assert.Equal(["proxy", "noise", "discriminator-gradient", "noise", "generator-gradient", "noise"], trace.Select(d => d.Name));
        Assert.Single(run.Client.Batches);
        run.AddTrace("proxy", 0, n, 3, 32, 32);
        run.AddTrace("z_fake", 1, n, 64);
        run.AddTrace("caller_discriminator_gradient", 2);
        run.AddTrace("z_gen", 3, n, 64);
        run.AddTrace("caller_generator_gradient", 4);
        run.AddTrace("z_student", 5, n, 64);
        run.AddAnswers("answers", 0);
        Assert.Equal(attack.Student.Architecture.EffectiveNormalization, attack.Discriminator.Architecture.EffectiveNormalization);
        var expected = oracle.Run("dfms_iteration", run.Parameters(), run.Inputs, float64: true);

        AssertGradient(expected, "dg:", attack.Discriminator, trace[2].Values, "the discriminator's gradient");
        AssertGradient(expected, "gg:", attack.GeneratorNetwork, trace[4].Values, "the generator's gradient");
        TestUtil.AssertClose(expected["images"].Data, run.Client.Batches[0].Images, 1e-5, "the student's queries");
        AssertTensors(expected, "g:", attack.GeneratorNetwork.Export(), 1e-5, "generator, after the iteration:");
        AssertTensors(expected, "d:", attack.Discriminator.Export(), 1e-5, "discriminator, after the iteration:");
        AssertTensors(expected, "s:", attack.Student.Export(), 1e-4, "student, after the iteration:");
    }
}
