using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Guardian;
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

    private static float[] Flatten(double[][] rows) => rows.SelectMany(r => r.Select(v => (float)v)).ToArray();

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
        using var k = new CpuKernels();
        using var victimNet = TinyAttack.Victim(k);
        var client = new RecordingClient(new DefendedVictimClient(new VictimClassifier(victimNet), new NoDefense()));
        var recipe = AttackOptions.For(kind, budget: 1);
        int m = recipe.Directions, steps = recipe.StudentSteps;
        var options = recipe with
        {
            Budget = n * (m + 1) + steps * n, BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1,
        };
        using var attack = TinyAttack.Create(k, kind, options);
        var trace = new List<(string Name, float[] Values)>();
        attack.Trace = (name, values) => trace.Add((name, values.ToArray()));
        var generatorBefore = attack.GeneratorNetwork.Export();
        var studentBefore = attack.Student.Export();
        await attack.RunAsync(client, TinyAttack.TestSet(4));

        Assert.Equal(new[] { "noise", "directions", "losses", "slopes", "generator-gradient" }.Concat(Enumerable.Repeat("noise", steps)), trace.Select(d => d.Name));
        Assert.Equal(1 + steps, client.Batches.Count);
        var inputs = new T
        {
            ["x"] = ([1], [0f]),
            ["z1"] = ([n, 64], trace[0].Values),
            ["u"] = ([n, m, 32 * 32], trace[1].Values),
            ["caller_slopes"] = ([n * m], trace[3].Values),
            ["caller_generator_gradient"] = ([trace[4].Values.Length], trace[4].Values),
            ["answers1"] = ([n * (m + 1), TinyAttack.Classes], Flatten(client.Batches[0].Answers)),
        };
        for (int s = 0; s < steps; s++)
        {
            inputs[$"z2_{s}"] = ([n, 64], trace[5 + s].Values);
            inputs[$"answers2_{s}"] = ([n, TinyAttack.Classes], Flatten(client.Batches[1 + s].Answers));
        }
        foreach (var (name, t) in generatorBefore.Tensors) inputs["g:" + name] = (t.Shape, t.Data);
        foreach (var (name, t) in studentBefore.Tensors) inputs["s:" + name] = (t.Shape, t.Data);
        var norm = attack.Student.Architecture.EffectiveNormalization;
        var expected = oracle.Run("zeroth_order_iteration", new
        {
            n, m, loss, student_steps = steps, epsilon = options.Epsilon, shift = options.ImageShift, classes = TinyAttack.Classes,
            generator_width = options.GeneratorWidth, student_width = options.StudentWidth,
            generator_lr = options.GeneratorLearningRate, student_lr = options.StudentLearningRate,
            mean = norm.Mean, std = norm.Std,
        }, inputs, float64: true);

        TestUtil.AssertClose(expected["images1"].Data, client.Batches[0].Images, 1e-5, "the zeroth-order queries");
        TestUtil.AssertClose(expected["losses"].Data, trace[2].Values, 1e-5, "the zeroth-order losses");
        TestUtil.AssertRelativeL2(expected["slopes"].Data, trace[3].Values, 0.1, "the zeroth-order slopes");
        var gradient = attack.GeneratorNetwork.Parameters.Trainable.SelectMany(p => expected["gg:" + p.Name].Data).ToArray();
        TestUtil.AssertRelativeL2(gradient, trace[4].Values, 1e-3, "the generator's gradient");
        foreach (var (name, t) in attack.GeneratorNetwork.Export().Tensors)
            TestUtil.AssertClose(expected["g:" + name].Data, t.Data, 1e-5, $"generator {name} after its step and the fresh batches");
        for (int s = 0; s < steps; s++)
            TestUtil.AssertClose(expected[$"images2_{s}"].Data, client.Batches[1 + s].Images, 1e-5, $"the student's fresh queries, step {s + 1}");
        foreach (var (name, t) in attack.Student.Export().Tensors)
            TestUtil.AssertClose(expected["s:" + name].Data, t.Data, 1e-4, $"student {name} after its steps");
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
        using var k = new CpuKernels();
        using var victimNet = TinyAttack.Victim(k);
        var client = new RecordingClient(new DefendedVictimClient(new VictimClassifier(victimNet), new NoDefense()));
        const int n = 4;
        var recipe = AttackOptions.For(kind, budget: 1);
        int steps = recipe.StudentSteps;
        var options = recipe with { Budget = steps * n, BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1 };
        using var attack = (DisguideAttack)TinyAttack.Create(k, kind, options);
        var trace = new List<(string Name, float[] Values)>();
        attack.Trace = (name, values) => trace.Add((name, values.ToArray()));
        var generatorBefore = attack.GeneratorNetwork.Export();
        var firstBefore = attack.Student.Export();
        var secondBefore = attack.SecondStudent.Export();
        await attack.RunAsync(client, TinyAttack.TestSet(4));

        Assert.Equal(new[] { "noise", "generator-gradient" }.Concat(Enumerable.Repeat("noise", steps)), trace.Select(d => d.Name));
        Assert.Equal(steps, client.Batches.Count);
        var inputs = new T
        {
            ["x"] = ([1], [0f]),
            ["z1"] = ([n, 64], trace[0].Values),
            ["caller_generator_gradient"] = ([trace[1].Values.Length], trace[1].Values),
        };
        for (int s = 0; s < steps; s++)
        {
            inputs[$"z2_{s}"] = ([n, 64], trace[2 + s].Values);
            inputs[$"answers2_{s}"] = ([n, TinyAttack.Classes], Flatten(client.Batches[s].Answers));
        }
        foreach (var (name, t) in generatorBefore.Tensors) inputs["g:" + name] = (t.Shape, t.Data);
        foreach (var (name, t) in firstBefore.Tensors) inputs["s:" + name] = (t.Shape, t.Data);
        foreach (var (name, t) in secondBefore.Tensors) inputs["s2:" + name] = (t.Shape, t.Data);
        var norm = attack.Student.Architecture.EffectiveNormalization;
        var expected = oracle.Run("two_student_iteration", new
        {
            student_steps = steps, shift = options.ImageShift, classes = TinyAttack.Classes, diversity = options.DiversityWeight,
            generator_width = options.GeneratorWidth, student_width = options.StudentWidth,
            generator_lr = options.GeneratorLearningRate, student_lr = options.StudentLearningRate,
            mean = norm.Mean, std = norm.Std,
        }, inputs, float64: true);

        var gradient = attack.GeneratorNetwork.Parameters.Trainable.SelectMany(p => expected["gg:" + p.Name].Data).ToArray();
        TestUtil.AssertRelativeL2(gradient, trace[1].Values, 1e-3, "the generator's gradient");
        foreach (var (name, t) in attack.GeneratorNetwork.Export().Tensors)
            TestUtil.AssertClose(expected["g:" + name].Data, t.Data, 1e-5, $"generator {name} after its step and the fresh batches");
        for (int s = 0; s < steps; s++)
            TestUtil.AssertClose(expected[$"images2_{s}"].Data, client.Batches[s].Images, 1e-5, $"the students' fresh queries, step {s + 1}");
        foreach (var (prefix, student) in new[] { ("s:", attack.Student), ("s2:", attack.SecondStudent) })
            foreach (var (name, t) in student.Export().Tensors)
                TestUtil.AssertClose(expected[prefix + name].Data, t.Data, 1e-4, $"student {prefix}{name} after its steps");
    }

    /// <summary>
    /// DaST with its recipe (batch cut to 4, replay off, widths 4 and 8): the label-coded generator's white-box step
    /// through the student and the student's step on the same answered batch. Tolerances as for the two-student attacks.
    /// </summary>
    [Fact]
    public async Task OneDastIterationMatchesPyTorch()
    {
        using var k = new CpuKernels();
        using var victimNet = TinyAttack.Victim(k);
        var client = new RecordingClient(new DefendedVictimClient(new VictimClassifier(victimNet), new NoDefense()));
        const int n = 4;
        var options = AttackOptions.For(AttackKind.Dast, budget: n) with
        {
            BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1,
        };
        using var attack = TinyAttack.Create(k, AttackKind.Dast, options);
        var trace = new List<(string Name, float[] Values)>();
        attack.Trace = (name, values) => trace.Add((name, values.ToArray()));
        var generatorBefore = attack.GeneratorNetwork.Export();
        var studentBefore = attack.Student.Export();
        await attack.RunAsync(client, TinyAttack.TestSet(4));

        Assert.Equal(["noise", "labels", "generator-gradient"], trace.Select(d => d.Name));
        Assert.Single(client.Batches);
        Assert.True(trace[1].Values.Distinct().Count() > 1, "the codes should name more than one class");
        var inputs = new T
        {
            ["x"] = ([1], [0f]),
            ["z"] = ([n, 64], trace[0].Values),
            ["labels"] = ([n], trace[1].Values),
            ["caller_generator_gradient"] = ([trace[2].Values.Length], trace[2].Values),
            ["answers"] = ([n, TinyAttack.Classes], Flatten(client.Batches[0].Answers)),
        };
        foreach (var (name, t) in generatorBefore.Tensors) inputs["g:" + name] = (t.Shape, t.Data);
        foreach (var (name, t) in studentBefore.Tensors) inputs["s:" + name] = (t.Shape, t.Data);
        var norm = attack.Student.Architecture.EffectiveNormalization;
        var expected = oracle.Run("dast_iteration", new
        {
            shift = options.ImageShift, classes = TinyAttack.Classes,
            generator_width = options.GeneratorWidth, student_width = options.StudentWidth,
            generator_lr = options.GeneratorLearningRate, student_lr = options.StudentLearningRate,
            mean = norm.Mean, std = norm.Std,
        }, inputs, float64: true);

        TestUtil.AssertClose(expected["images"].Data, client.Batches[0].Images, 1e-5, "the queries");
        var gradient = attack.GeneratorNetwork.Parameters.Trainable.SelectMany(p => expected["gg:" + p.Name].Data).ToArray();
        TestUtil.AssertRelativeL2(gradient, trace[2].Values, 1e-3, "the generator's gradient");
        foreach (var (name, t) in attack.GeneratorNetwork.Export().Tensors)
            TestUtil.AssertClose(expected["g:" + name].Data, t.Data, 1e-5, $"generator {name} after its step");
        foreach (var (name, t) in attack.Student.Export().Tensors)
            TestUtil.AssertClose(expected["s:" + name].Data, t.Data, 1e-4, $"student {name} after its step");
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
        using var k = new CpuKernels();
        using var victimNet = TinyAttack.Victim(k);
        var client = new RecordingClient(new DefendedVictimClient(new VictimClassifier(victimNet), new NoDefense()));
        const int n = 4;
        var options = AttackOptions.For(AttackKind.DfmsHl, budget: n) with
        {
            BatchSize = n, StudentWidth = 4, GeneratorWidth = 8, ReplaySteps = 0, EvaluationPoints = 1, ProxyPretrainSteps = 0,
        };
        using var attack = (DfmsHlAttack)TinyAttack.Create(k, AttackKind.DfmsHl, options);
        var trace = new List<(string Name, float[] Values)>();
        attack.Trace = (name, values) => trace.Add((name, values.ToArray()));
        var before = new[] { ("g:", attack.GeneratorNetwork.Export()), ("d:", attack.Discriminator.Export()), ("s:", attack.Student.Export()) };
        await attack.RunAsync(client, TinyAttack.TestSet(4));

        Assert.Equal(["proxy", "noise", "discriminator-gradient", "noise", "generator-gradient", "noise"], trace.Select(d => d.Name));
        Assert.Single(client.Batches);
        var inputs = new T
        {
            ["x"] = ([1], [0f]),
            ["proxy"] = ([n, 3, 32, 32], trace[0].Values),
            ["z_fake"] = ([n, 64], trace[1].Values),
            ["caller_discriminator_gradient"] = ([trace[2].Values.Length], trace[2].Values),
            ["z_gen"] = ([n, 64], trace[3].Values),
            ["caller_generator_gradient"] = ([trace[4].Values.Length], trace[4].Values),
            ["z_student"] = ([n, 64], trace[5].Values),
            ["answers"] = ([n, TinyAttack.Classes], Flatten(client.Batches[0].Answers)),
        };
        foreach (var (prefix, set) in before)
            foreach (var (name, t) in set.Tensors) inputs[prefix + name] = (t.Shape, t.Data);
        var norm = attack.Student.Architecture.EffectiveNormalization;
        Assert.Equal(norm, attack.Discriminator.Architecture.EffectiveNormalization);
        var expected = oracle.Run("dfms_iteration", new
        {
            shift = options.ImageShift, classes = TinyAttack.Classes, diversity = options.DiversityWeight,
            generator_width = options.GeneratorWidth, student_width = options.StudentWidth,
            generator_lr = options.GeneratorLearningRate, student_lr = options.StudentLearningRate,
            mean = norm.Mean, std = norm.Std,
        }, inputs, float64: true);

        TestUtil.AssertRelativeL2(attack.Discriminator.Parameters.Trainable.SelectMany(p => expected["dg:" + p.Name].Data).ToArray(), trace[2].Values, 1e-3, "the discriminator's gradient");
        TestUtil.AssertRelativeL2(attack.GeneratorNetwork.Parameters.Trainable.SelectMany(p => expected["gg:" + p.Name].Data).ToArray(), trace[4].Values, 1e-3, "the generator's gradient");
        TestUtil.AssertClose(expected["images"].Data, client.Batches[0].Images, 1e-5, "the student's queries");
        foreach (var (prefix, net, tolerance) in new[] { ("g:", attack.GeneratorNetwork.Export(), 1e-5), ("d:", attack.Discriminator.Export(), 1e-5), ("s:", attack.Student.Export(), 1e-4) })
            foreach (var (name, t) in net.Tensors)
                TestUtil.AssertClose(expected[prefix + name].Data, t.Data, tolerance, $"{prefix}{name} after the iteration");
    }
}
