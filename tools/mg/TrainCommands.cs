using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ModelGuardian.Engine;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Tools;

/// <summary>`mg train classifier`, `detector`, `init`, `gan` and `seat-encoder`: our own models, from data on this machine only.</summary>
internal static class TrainCommands
{
    public const string TrainerVersion = "ModelGuardian mg train 1";

    public static Command Create()
    {
        var cmd = new Command("train", "Trains models with our own engine (seeded, reproducible on the CPU backend).");
        cmd.Subcommands.Add(Classifier());
        cmd.Subcommands.Add(Detector());
        cmd.Subcommands.Add(Init());
        cmd.Subcommands.Add(Gan());
        cmd.Subcommands.Add(SeatEncoder());
        return cmd;
    }

    private sealed record Common(Option<string> Arch, Option<int> Width, Option<int> Epochs, Option<int> Batch, Option<float> Lr, Option<string> Optimizer,
                                 Option<ulong> Seed, Option<string> Backend, Option<string> Output);

    private static Common Options(string arch, int width, int epochs, float lr) => new(
        new Option<string>("--arch") { Description = "resnet18|34|50, each also -cifar (3×3 stem, 32² inputs)", DefaultValueFactory = _ => arch },
        new Option<int>("--width") { Description = "ResNet width (torchvision 64)", DefaultValueFactory = _ => width },
        new Option<int>("--epochs") { DefaultValueFactory = _ => epochs },
        new Option<int>("--batch") { DefaultValueFactory = _ => 32 },
        new Option<float>("--lr") { Description = "learning rate (×0.9 every 10 epochs)", DefaultValueFactory = _ => lr },
        new Option<string>("--optimizer") { Description = "adam or sgd (momentum 0.9)", DefaultValueFactory = _ => "adam" },
        new Option<ulong>("--seed") { DefaultValueFactory = _ => 1UL },
        new Option<string>("--backend") { Description = "auto, cpu or cuda", DefaultValueFactory = _ => "auto" },
        new Option<string>("--output", "-o") { Description = "weight file to write (.mgw); metrics go beside it as .metrics.json", Required = true });

    private static void AddTo(Command cmd, Common c)
    {
        foreach (var o in new Option[] { c.Arch, c.Width, c.Epochs, c.Batch, c.Lr, c.Optimizer, c.Seed, c.Backend, c.Output }) cmd.Options.Add(o);
    }

    private static TrainingOptions TrainingOptionsOf(ParseResult p, Common c, Func<RgbImage, Random, RgbImage>? augment) => new()
    {
        Epochs = p.GetValue(c.Epochs), BatchSize = p.GetValue(c.Batch), LearningRate = p.GetValue(c.Lr), Optimizer = p.GetValue(c.Optimizer)!,
        Seed = p.GetValue(c.Seed), Augment = augment,
    };

    private static Command Classifier()
    {
        var c = Options("resnet18-cifar", 16, 3, 1e-3f);
        var data = new Option<string>("--data") { Description = "fashion-mnist (Debian's dataset-fashion-mnist, 3×32×32), or a folder with one sub-folder per class", DefaultValueFactory = _ => "fashion-mnist" };
        var limit = new Option<int?>("--limit") { Description = "train on the first N training images only" };
        var objective = new Option<string>("--objective")
        {
            Description = "cross-entropy (a victim), or misinformation (−log(1 − p_label): Adaptive Misinformation's model that answers wrongly on purpose)",
            DefaultValueFactory = _ => "cross-entropy",
        };
        var cmd = new Command("classifier", "Trains a victim classifier (softmax cross-entropy); reports held-out accuracy (BAcc before any defense).") { data, limit, objective };
        AddTo(cmd, c);
        cmd.SetAction(parse => Program.Run(() =>
        {
            string source = parse.GetValue(data)!;
            ILabeledImages train, test;
            int classes;
            if (source == "fashion-mnist")
            {
                var tr = FashionMnist.Load(DatasetSplit.Train);
                var te = FashionMnist.Load(DatasetSplit.Test);
                int n = Math.Min(parse.GetValue(limit) ?? tr.Count, tr.Count);
                train = new FashionMnistImages(tr, n);
                test = new FashionMnistImages(te, te.Count);
                classes = 10;
            }
            else
            {
                var folder = ImageFolder.LoadLabelled(source);
                var all = folder.Images.Select(i => (i.Image, i.Label)).ToList();
                int held = Math.Max(1, all.Count / 10);
                // Every 10th image is held out: deterministic, and spread over the classes.
                test = new LabeledImageList(all.Where((_, i) => i % 10 == 9).Take(held).ToList());
                train = new LabeledImageList(all.Where((_, i) => i % 10 != 9).Take(parse.GetValue(limit) ?? int.MaxValue).ToList());
                classes = folder.ClassNames.Count;
            }
            var arch = ArchitectureDescriptor.Parse(parse.GetValue(c.Arch)!, classes, width: parse.GetValue(c.Width));
            if (arch.Kind != NetworkKind.ResNet) throw new ArgumentException("--arch must be a ResNet.");
            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(c.Backend)!));
            Console.Error.WriteLine($"mg train classifier: {arch} on {train.Count} images ({source}), {kernels.Name}");
            using var net = TrainableNetwork.ResNet(kernels, arch, parse.GetValue(c.Seed));
            var augment = source == "fashion-mnist" ? null : (Func<RgbImage, Random, RgbImage>)((img, rng) => rng.Next(2) == 0 ? Augmentations.FlipHorizontal(img) : img);
            var trainingObjective = parse.GetValue(objective) switch
            {
                "cross-entropy" => TrainingObjective.CrossEntropy,
                "misinformation" => TrainingObjective.Misinformation,
                var x => throw new ArgumentException($"--objective: '{x}' is neither 'cross-entropy' nor 'misinformation'."),
            };
            var metrics = SupervisedTrainer.Train(net, train, test, TrainingOptionsOf(parse, c, augment) with { Objective = trainingObjective }, new TrainingProgressBar("train"));
            // Record how the training images reached the network, so that every server of the model does the same.
            var input = source == "fashion-mnist" ? FashionMnist.Contract : new InputContract();
            Save(parse, c, net, source, metrics, $"held-out accuracy {metrics.Accuracy:P2} on {metrics.Samples} images", input);
        }));
        return cmd;
    }

    private static Command SeatEncoder()
    {
        var c = Options("resnet18-cifar", 8, 1, 1e-3f);
        var limit = new Option<int>("--limit") { Description = "train on the first N Fashion-MNIST training images", DefaultValueFactory = _ => 12000 };
        var dim = new Option<int>("--dim") { Description = "embedding size", DefaultValueFactory = _ => 32 };
        var epsilon = new Option<double>("--epsilon") { Description = "L∞ radius of the perturbations mapped close to their image, in grey levels (0…255)", DefaultValueFactory = _ => 8 };
        var steps = new Option<int>("--pgd-steps") { Description = "PGD steps searching that radius", DefaultValueFactory = _ => 3 };
        var margin = new Option<double>("--margin") { Description = "different images are pushed at least this far apart", DefaultValueFactory = _ => 1 };
        var calibration = new Option<int>("--calibration-count") { Description = "training images after the first --limit whose pairwise distances set δ", DefaultValueFactory = _ => 2000 };
        var quantile = new Option<double>("--pair-quantile") { Description = "δ is this quantile of those distances: the share of benign pairs counted as similar", DefaultValueFactory = _ => 1e-5 };
        var cmd = new Command("seat-encoder", "Trains SEAT's similarity encoder (adversarial, contrastive) on Fashion-MNIST and scales it so that similar pairs lie closer than 1.")
        {
            limit, dim, epsilon, steps, margin, calibration, quantile,
        };
        AddTo(cmd, c);
        cmd.SetAction(parse => Program.Run(() =>
        {
            var data = FashionMnist.Load(DatasetSplit.Train);
            int n = parse.GetValue(limit), m = parse.GetValue(calibration);
            if (n < 2 || m < 2 || n + m > data.Count) throw new ArgumentException($"--limit {n} and --calibration-count {m} must each be ≥ 2 and together ≤ {data.Count} training images.");
            float[] Unit(int i) => data.ToPlanar32(i).Values.Select(v => v / 255f).ToArray();
            var train = Enumerable.Range(0, n).Select(Unit).ToList();
            var arch = ArchitectureDescriptor.Parse(parse.GetValue(c.Arch)!, parse.GetValue(dim), width: parse.GetValue(c.Width));
            if (arch.Kind != NetworkKind.ResNet) throw new ArgumentException("--arch must be a ResNet.");
            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(c.Backend)!));
            Console.Error.WriteLine($"mg train seat-encoder: {arch} on {n} images (fashion-mnist), {kernels.Name}");
            using var net = TrainableNetwork.ResNet(kernels, arch, parse.GetValue(c.Seed));
            var options = new SeatTrainingOptions(parse.GetValue(c.Epochs), parse.GetValue(c.Batch), parse.GetValue(c.Lr), parse.GetValue(epsilon) / 255,
                                                  parse.GetValue(steps), parse.GetValue(margin), parse.GetValue(c.Seed));
            var last = SeatTraining.Train(net, train, options, new Progress<SeatTrainingProgress>(p =>
            {
                if (p.Step % 20 == 0 || p.Step == p.Steps) Console.Error.WriteLine($"seat-encoder {p.Step}/{p.Steps}: positive {p.PositiveLoss:F4}, negative {p.NegativeLoss:F4}");
            }));
            // δ from natural images the encoder never saw; then the last layer is divided by δ, so that a served encoder's
            // threshold is 1 and cannot drift apart from the weights it belongs to.
            var tensors = net.Export();
            double delta;
            using (var probe = Network.Create(kernels, arch, tensors))
            {
                var encoder = new SeatEncoder(probe);
                var embeddings = new List<float[]>();
                for (int start = 0; start < m; start += 100)
                {
                    int b = Math.Min(100, m - start);
                    embeddings.AddRange(encoder.Embed(Enumerable.Range(n + start, b).SelectMany(Unit).ToArray(), b));
                }
                delta = SeatDetector.CalibrateThreshold(embeddings, parse.GetValue(quantile));
            }
            if (!(delta > 0)) throw new InvalidOperationException($"The calibrated distance δ is {delta}: the encoder maps distinct images onto one point; train it longer or with another seed.");
            foreach (var name in new[] { "fc.weight", "fc.bias" })
            {
                var t = tensors[name];
                tensors[name] = new HostTensor(t.Shape, t.Data.Select(v => (float)(v / delta)).ToArray());
            }
            string output = parse.GetValue(c.Output)!;
            string command = "mg " + string.Join(' ', Program.Arguments);
            string summary = FormattableString.Invariant($"δ = {delta:G6} at the {parse.GetValue(quantile)} quantile of {m} held-out images' pair distances, scaled to 1; last losses positive {last.PositiveLoss:F4}, negative {last.NegativeLoss:F4}");
            var provenance = new Provenance("trained: fashion-mnist (SEAT similarity encoder)", "", "mg train", TrainerVersion, DateTimeOffset.UtcNow,
                [$"command: {command}", $"seed {parse.GetValue(c.Seed)}", summary]);
            WeightFile.Save(output, arch, tensors, provenance);
            string metricsPath = Path.ChangeExtension(output, ".metrics.json");
            File.WriteAllText(metricsPath, JsonSerializer.Serialize(new
            {
                architecture = arch.ToString(), source = "fashion-mnist", samples = n, calibration_samples = m, pair_quantile = parse.GetValue(quantile),
                delta_before_scaling = delta, positive_loss = last.PositiveLoss, negative_loss = last.NegativeLoss, seed = parse.GetValue(c.Seed), command,
            }, new JsonSerializerOptions { WriteIndented = true }));
            Console.Error.WriteLine($"mg train: {summary} → {output} (+ {Path.GetFileName(metricsPath)})");
        }));
        return cmd;
    }

    private static Command Detector()
    {
        var c = Options("resnet18-cifar", 8, 5, 5e-4f);
        var real = new Option<string>("--real") { Description = "'photos' (seeded 32² crops of Debian's photos), 'fashion-mnist' (training images, 3×32×32), 'both' (half each), or a folder", DefaultValueFactory = _ => "photos" };
        var fake = new Option<string>("--fake") { Description = "a folder of synthetic images, generator:<family> (seeded random generators of that up-sampling family: transposed, nearest, bilinear, transposed-blur, pixel-shuffle), generator-grey:<family> (the same bodies with the attacks' grey batch-norm and tanh head), or generator-file:<path.mgw> (a generator trained by mg train gan); several joined by '+' share the synthetic class evenly", Required = true };
        var transform = new Option<string>("--transform") { Description = "the transformation model: a StyleGAN D .mgw, or random:R (a seeded random D of side R)", DefaultValueFactory = _ => "random:32" };
        var count = new Option<int>("--count") { Description = "images per class taken from 'photos' and generators", DefaultValueFactory = _ => 1000 };
        var noAugment = new Option<bool>("--no-augment") { Description = "skip the random horizontal flips of gradient images" };
        var generators = new Option<int>("--generators") { Description = "how many seeded instances of the generator family the synthetic images come from", DefaultValueFactory = _ => 50 };
        var postProcess = new Option<double>("--post-process") { Description = "probability of each post-processing step on real and synthetic images alike before their gradients: blur σ ~ U[0, 3], then JPEG quality ~ U{30…100} (CNNDetection's recipe); 0 (default) leaves images as made", DefaultValueFactory = _ => 0 };
        var resampling = new Option<bool>("--post-process-resampling") { Description = "with --post-process: also a down-up ×2 and noise σ ~ U[0, 4] grey levels, each at the same probability" };
        var targetFpr = new Option<double?>("--target-fpr") { Description = "shift the output bias so that this share of fresh real images (from --calibration-real, put through the same post-processing) is flagged at sigmoid > 0.5" };
        var calibration = new Option<int>("--calibration-count") { Description = "fresh real images for --target-fpr", DefaultValueFactory = _ => 4000 };
        var calibrationReal = new Option<string?>("--calibration-real") { Description = "where --target-fpr's real images come from: photos, fashion-mnist or both (default: as --real); a provider calibrates on its own benign data" };
        var cmd = new Command("detector", "Trains a binary sub-detector on gradient images of real vs synthetic images; reports DAcc and FPR on a held-out fifth.")
        {
            real, fake, transform, count, generators, noAugment, postProcess, resampling, targetFpr, calibration, calibrationReal,
        };
        AddTo(cmd, c);
        cmd.SetAction(parse => Program.Run(() =>
        {
            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(c.Backend)!));
            ulong seed = parse.GetValue(c.Seed);
            int n = parse.GetValue(count);
            // Calibration draws its real images after the training ones: other photo crops, the next Fashion-MNIST images.
            List<RgbImage> Photos(int count, ulong stream = 0) => PhotoPool.Load().Crops(count, new PhotoCropOptions(32), seed + stream).ToList();
            List<RgbImage> Fashion(int count, int skip = 0)
            {
                var fm = FashionMnist.Load(DatasetSplit.Train);
                var order = new BatchIterator(fm.Count, fm.Count, seed).Order(0);
                if (skip + count > fm.Count) throw new ArgumentException($"Fashion-MNIST has {fm.Count} training images; {skip} + {count} asked for.");
                return order.Skip(skip).Take(count).Select(i => RgbImage.FromPlanar(fm.ToPlanar32(i).Values, 32, 32)).ToList();
            }
            var realImages = parse.GetValue(real) switch
            {
                "photos" => Photos(n),
                "fashion-mnist" => Fashion(n),
                "both" => [.. Photos(n / 2), .. Fashion(n - n / 2)],
                var folder => ImageFolder.Load(folder!).Select(f => f.Image).ToList(),
            };
            double? fprTarget = parse.GetValue(targetFpr);
            int m = parse.GetValue(calibration);
            string calibrationSource = parse.GetValue(calibrationReal) ?? parse.GetValue(real)!;
            var calibrationImages = fprTarget is null ? null : calibrationSource switch
            {
                "photos" => Photos(m, 7000),
                "fashion-mnist" => Fashion(m, n),
                "both" => [.. Photos(m / 2, 7000), .. Fashion(m - m / 2, n)],
                _ => throw new ArgumentException($"--target-fpr draws fresh real images from photos, fashion-mnist or both, not '{calibrationSource}' (a folder has none to spare)."),
            };
            if (fprTarget is { } f0 && !(f0 >= 0 && f0 < 1)) throw new ArgumentException($"--target-fpr must lie in [0, 1), got {f0}.");
            if (fprTarget is not null && m < 100) throw new ArgumentException($"--calibration-count must be at least 100, got {m}.");
            List<RgbImage> FakeImages(string f, int count, int sourceIndex)
            {
                ulong stream = seed * 1000 + 200_000 + (ulong)sourceIndex * 10_000;
                if (f.StartsWith("generator-file:", StringComparison.Ordinal))
                {
                    // A trained generator (mg train gan): one instance, its noise seeded.
                    var (g, contents) = GeneratorFiles.Load(kernels, f["generator-file:".Length..]);
                    using var _g = g;
                    Console.Error.WriteLine($"mg train detector: synthetic images from {contents.Architecture}");
                    return g.Generate(count, stream).ToList();
                }
                if (f.StartsWith("generator-grey:", StringComparison.Ordinal))
                {
                    // What a grey-headed attack sends first: untrained bodies of the family (widths 16 and 32, as the attacks use)
                    // through batch-norm and tanh, shifted as the attacks' dark start and as an unshifted one.
                    var family = GeneratorFamilies.Parse(f["generator-grey:".Length..]);
                    int instances = Math.Clamp(parse.GetValue(generators), 1, count);
                    var list = new List<RgbImage>(count);
                    for (int i = 0; i < instances; i++)
                    {
                        using var g = ImageGenerator.CreateGreyLogits(kernels, family, seed * 1000 + 150_000 + (ulong)i, i % 2 == 0 ? 16 : 32);
                        list.AddRange(Engine.Attacks.GreyImageHead.Sample(g, count / instances + (i < count % instances ? 1 : 0), stream + (ulong)i,
                            shift: i % 3 == 2 ? 0f : Engine.Attacks.AttackOptions.DarkStart));
                    }
                    return list;
                }
                if (f.StartsWith("generator:", StringComparison.Ordinal))
                {
                    var family = GeneratorFamilies.Parse(f["generator:".Length..]);
                    // Many seeded instances of the family: one instance's colours and textures are easy to memorise,
                    // and a detector must learn what the family's up-sampling leaves behind instead.
                    int instances = Math.Clamp(parse.GetValue(generators), 1, count);
                    var list = new List<RgbImage>(count);
                    for (int i = 0; i < instances; i++)
                    {
                        using var g = ImageGenerator.Create(kernels, family, seed * 1000 + 100_000 + (ulong)i);
                        list.AddRange(g.Generate(count / instances + (i < count % instances ? 1 : 0), stream + (ulong)i));
                    }
                    return list;
                }
                return ImageFolder.Load(f).Select(i => i.Image).ToList();
            }
            // Several sources joined by '+' share the synthetic class evenly (e.g. a trained generator and untrained instances of its family).
            var sources = parse.GetValue(fake)!.Split('+');
            var fakeImages = sources.SelectMany((src, i) => FakeImages(src, n / sources.Length + (i < n % sources.Length ? 1 : 0), i)).ToList();
            double pp = parse.GetValue(postProcess);
            if (!(pp >= 0 && pp <= 1)) throw new ArgumentException($"--post-process must lie in [0, 1], got {pp}.");
            if (parse.GetValue(resampling) && pp == 0) throw new ArgumentException("--post-process-resampling needs a --post-process probability above 0.");
            if (pp > 0)
            {
                // Both classes go through the same steps, so blur or JPEG alone cannot tell them apart; each image
                // gets its own draw, seeded by its class and index.
                var steps = new PostProcessAugmentation(pp, parse.GetValue(resampling));
                realImages = realImages.Select((img, i) => steps.Apply(img, SeededRandom.ForItem(seed + 4000, 0, i))).ToList();
                fakeImages = fakeImages.Select((img, i) => steps.Apply(img, SeededRandom.ForItem(seed + 4000, 1, i))).ToList();
                calibrationImages = calibrationImages?.Select((img, i) => steps.Apply(img, SeededRandom.ForItem(seed + 4000, 2, i))).ToList();
            }
            string t = parse.GetValue(transform)!;
            Network d;
            if (t.StartsWith("random:", StringComparison.Ordinal))
            {
                int r = int.Parse(t["random:".Length..], CultureInfo.InvariantCulture);
                d = RandomWeights.Create(kernels, ArchitectureDescriptor.StyleGanD(r, Math.Max(r * 16, 512), 32, mbstdGroupSize: 1), seed + 3000).Network;
            }
            else d = ModelFiles.LoadTransform(kernels, t).Network;
            using var _d = d;
            Console.Error.WriteLine($"mg train detector: {realImages.Count} real and {fakeImages.Count} synthetic images through {d.Architecture}");
            var data = GradientDataset.Build(new GradientTransform(d), realImages, fakeImages);
            var order = new BatchIterator(data.Count, data.Count, seed).Order(0);
            int held = data.Count / 5;
            var test = new LabeledImageList(order.Take(held).Select(i => data[i]).ToList());
            var train = new LabeledImageList(order.Skip(held).Select(i => data[i]).ToList());
            // The detector sees gradient images at D's resolution ("test on the full image").
            var a = ArchitectureDescriptor.Parse(parse.GetValue(c.Arch)!, 1, width: parse.GetValue(c.Width));
            var arch = ArchitectureDescriptor.ResNet(a.Depth, 1, a.Stem, d.Architecture.Resolution, a.Width);
            using var net = TrainableNetwork.ResNet(kernels, arch, seed);
            // Gradient images are augmented as LGrad's: flips (crops would move the up-sampling grid).
            Func<RgbImage, Random, RgbImage>? augment = parse.GetValue(noAugment) ? null : (img, rng) => rng.Next(2) == 0 ? Augmentations.FlipHorizontal(img) : img;
            var metrics = SupervisedTrainer.Train(net, train, test, TrainingOptionsOf(parse, c, augment), new TrainingProgressBar("train"));
            string calibrated = "";
            if (fprTarget is { } f && calibrationImages is not null)
            {
                var gradients = GradientDataset.Build(new GradientTransform(d), calibrationImages, []);
                var r = DetectorCalibration.ShiftToFalsePositiveRate(net, Enumerable.Range(0, gradients.Count).Select(i => gradients[i].Image).ToList(), f);
                metrics = SupervisedTrainer.Evaluate(net, test);
                calibrated = $", calibrated to FPR {f.ToString(CultureInfo.InvariantCulture)} on {r.Images} fresh real images ({calibrationSource}) (logit shift {r.LogitShift.ToString("G4", CultureInfo.InvariantCulture)}, {r.FalsePositiveRate:P2} flagged)";
                Console.Error.WriteLine($"mg train detector: output bias shifted by {-r.LogitShift:G4}: {r.FalsePositiveRate:P2} of {r.Images} fresh real images flagged");
            }
            string processed = pp > 0 ? $", post-processed p {pp.ToString(CultureInfo.InvariantCulture)}{(parse.GetValue(resampling) ? " with resampling" : "")}" : "";
            Save(parse, c, net, $"real {parse.GetValue(real)}, fake {parse.GetValue(fake)}, transform {t}{processed}{calibrated}", metrics,
                 $"held-out accuracy {metrics.Accuracy:P2}, DAcc {metrics.DetectionAccuracy:P2}, FPR {metrics.FalsePositiveRate:P2} on {metrics.Samples} gradient images");
        }));
        return cmd;
    }

    private static Command Init()
    {
        var arch = new Option<string>("--arch") { Description = "resnet18|34|50[-cifar] or stylegan-d", Required = true };
        var classes = new Option<int>("--classes") { DefaultValueFactory = _ => 1 };
        var resolution = new Option<int>("--resolution") { DefaultValueFactory = _ => 256 };
        var width = new Option<int>("--width") { DefaultValueFactory = _ => 64 };
        var fmapBase = new Option<int>("--fmap-base") { DefaultValueFactory = _ => 16384 };
        var fmapMax = new Option<int>("--fmap-max") { DefaultValueFactory = _ => 512 };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1UL };
        var output = new Option<string>("--output", "-o") { Required = true };
        var cmd = new Command("init", "Writes seeded random weights as a weight file (e.g. a StyleGAN D as a transformation model when no trained one exists).")
        {
            arch, classes, resolution, width, fmapBase, fmapMax, seed, output,
        };
        cmd.SetAction(parse => Program.Run(() =>
        {
            var a = ArchitectureDescriptor.Parse(parse.GetValue(arch)!, parse.GetValue(classes), parse.GetValue(resolution), parse.GetValue(width), parse.GetValue(fmapBase), parse.GetValue(fmapMax));
            var source = new RandomWeights(parse.GetValue(seed));
            foreach (var p in ParameterSchema.For(a)) source.Take(p.Name, p.Shape, p.Role);
            string command = "mg " + string.Join(' ', Program.Arguments);
            WeightFile.Save(parse.GetValue(output)!, a, source.Tensors, new Provenance($"random, seed {parse.GetValue(seed)}", "", "mg train init", TrainerVersion,
                DateTimeOffset.UtcNow, [$"command: {command}", "seeded random weights (SplitMix64), not trained"]));
            Console.Error.WriteLine($"mg train init: {a}, seed {parse.GetValue(seed)} → {parse.GetValue(output)}");
        }));
        return cmd;
    }

    private static Command Gan()
    {
        var family = new Option<string>("--family") { Description = "the generator's up-sampling: transposed, nearest, bilinear, transposed-blur or pixel-shuffle", DefaultValueFactory = _ => "nearest" };
        var iterations = new Option<int>("--iterations") { Description = "iterations, each one D step then one G step", DefaultValueFactory = _ => 1000 };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 32 };
        var width = new Option<int>("--width") { Description = "generator width (channels after the first up-sampling)", DefaultValueFactory = _ => 32 };
        var fmapBase = new Option<int>("--d-fmap-base") { Description = "discriminator channel rule nf(res) = min(base/res, max), at resolution 32", DefaultValueFactory = _ => 512 };
        var fmapMax = new Option<int>("--d-fmap-max") { DefaultValueFactory = _ => 32 };
        var group = new Option<int>("--mbstd-group") { Description = "D's minibatch-stddev group while training; 1 (default) is what screening uses", DefaultValueFactory = _ => 1 };
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 2e-4f };
        var beta1 = new Option<float>("--beta1") { Description = "Adam β1 (β2 is 0.99); 0 as StyleGAN, 0.5 as DCGAN", DefaultValueFactory = _ => 0f };
        var real = new Option<string>("--real") { Description = "'photos' (seeded 32² crops of Debian's photos) or a folder of images (random 32² windows)", DefaultValueFactory = _ => "photos" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1UL };
        var backend = new Option<string>("--backend") { Description = "auto, cpu or cuda", DefaultValueFactory = _ => "auto" };
        var output = new Option<string>("--output", "-o") { Description = "a folder (ending in /, or existing) or a file prefix: writes generator.mgw, discriminator.mgw, metrics.json, samples.png", Required = true };
        var cmd = new Command("gan", "Trains a generator of one up-sampling family against a StyleGAN discriminator on real photos (non-saturating GAN loss).")
        {
            family, iterations, batch, width, fmapBase, fmapMax, group, lr, beta1, real, seed, backend, output,
        };
        cmd.SetAction(parse => Program.Run(() =>
        {
            var fam = GeneratorFamilies.Parse(parse.GetValue(family)!);
            ulong s = parse.GetValue(seed);
            var dArch = ArchitectureDescriptor.StyleGanD(ImageGenerator.Side, parse.GetValue(fmapBase), parse.GetValue(fmapMax), parse.GetValue(group));
            var options = new GanOptions
            {
                Iterations = parse.GetValue(iterations), BatchSize = parse.GetValue(batch), LearningRate = parse.GetValue(lr), Beta1 = parse.GetValue(beta1), Seed = s,
            };
            if (options.Iterations < 1) throw new ArgumentException("--iterations must be at least 1.");
            string source = parse.GetValue(real)!;
            Func<Random, RgbImage> realImage;
            if (source == "photos") realImage = GanTrainer.PhotoCrops(PhotoPool.Load());
            else
            {
                var images = ImageFolder.Load(source).Select(i => i.Image).ToList();
                if (images.Count == 0) throw new ArgumentException($"No images in '{source}'.");
                realImage = rng => RandomWindow(images[rng.Next(images.Count)], ImageGenerator.Side, rng);
            }
            string prefix = parse.GetValue(output)!;
            bool folder = prefix.EndsWith('/') || prefix.EndsWith(Path.DirectorySeparatorChar) || Directory.Exists(prefix);
            string Out(string name) => folder ? Path.Combine(prefix, name) : $"{prefix}-{name}";
            string dir = Path.GetDirectoryName(Path.GetFullPath(Out("x")))!;
            Directory.CreateDirectory(dir);

            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(backend)!));
            using var g = ImageGenerator.Create(kernels, fam, s * 1000 + 1, parse.GetValue(width));
            using var d = TrainableStyleGanDiscriminator.Create(kernels, dArch, s * 1000 + 2);
            Console.Error.WriteLine($"mg train gan: {g.Architecture} against {dArch}, batch {options.BatchSize}, {options.Iterations} iterations, real {source}, {kernels.Name}");
            var trainer = new GanTrainer(g, d, realImage, options);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var last = trainer.Train(new GanProgressBar("gan"));
            double seconds = clock.Elapsed.TotalSeconds;

            string command = "mg " + string.Join(' ', Program.Arguments);
            string summary = $"after {last.Iteration} iterations: D loss {last.DiscriminatorLoss:F4}, G loss {last.GeneratorLoss:F4}, D(real) {last.RealScore:F3}, D(fake) {last.FakeScore:F3}";
            Provenance Provenance(string what) => new($"trained: GAN {what}, real {source}", "", "mg train gan", TrainerVersion, DateTimeOffset.UtcNow,
                [$"command: {command}", $"seed {s}", $"generator {g.Architecture}", $"discriminator {dArch}", summary]);
            WeightFile.Save(Out("generator.mgw"), g.Architecture, g.Export(), Provenance("generator"));
            WeightFile.Save(Out("discriminator.mgw"), dArch, d.Export(), Provenance("discriminator"));
            File.WriteAllBytes(Out("samples.png"), Grid(g.Generate(64, s * 1000 + 3, options.BatchSize), 8).EncodePng());
            File.WriteAllText(Out("metrics.json"), JsonSerializer.Serialize(new
            {
                generator = g.Architecture.ToString(), discriminator = dArch.ToString(), real = source,
                iterations = last.Iteration, batch = options.BatchSize, lr = options.LearningRate, beta1 = options.Beta1, beta2 = options.Beta2,
                d_loss = last.DiscriminatorLoss, g_loss = last.GeneratorLoss, d_real = last.RealScore, d_fake = last.FakeScore,
                seconds, seconds_per_iteration = seconds / last.Iteration, backend = kernels.Name, seed = s, command,
            }, new JsonSerializerOptions { WriteIndented = true }));
            Console.Error.WriteLine($"mg train gan: {summary}, {seconds / last.Iteration:F3} s/iteration → {Out("generator.mgw")}, {Path.GetFileName(Out("discriminator.mgw"))}, {Path.GetFileName(Out("metrics.json"))}, {Path.GetFileName(Out("samples.png"))}");
        }));
        return cmd;
    }

    /// <summary>A random side² window of <paramref name="image"/> (images smaller than that are resized up first).</summary>
    private static RgbImage RandomWindow(RgbImage image, int side, Random rng)
    {
        if (image.Width < side || image.Height < side) image = Augmentations.Resize(image, Math.Max(side, image.Width), Math.Max(side, image.Height));
        return Augmentations.Crop(image, rng.Next(image.Width - side + 1), rng.Next(image.Height - side + 1), side, side);
    }

    /// <summary>Images of one size in a grid of <paramref name="columns"/>, 2-pixel white gutters.</summary>
    private static RgbImage Grid(IReadOnlyList<RgbImage> images, int columns)
    {
        const int gutter = 2;
        int w = images[0].Width, h = images[0].Height, rows = (images.Count + columns - 1) / columns;
        int gw = columns * (w + gutter) + gutter, gh = rows * (h + gutter) + gutter;
        var px = new byte[gw * gh * 3];
        Array.Fill(px, (byte)255);
        for (int i = 0; i < images.Count; i++)
        {
            int x0 = gutter + i % columns * (w + gutter), y0 = gutter + i / columns * (h + gutter);
            for (int y = 0; y < h; y++)
                images[i].Pixels.AsSpan(y * w * 3, w * 3).CopyTo(px.AsSpan(((y0 + y) * gw + x0) * 3));
        }
        return new RgbImage(gw, gh, px);
    }

    private static void Save(ParseResult parse, Common c, TrainableNetwork net, string source, ValidationMetrics metrics, string summary, InputContract? input = null)
    {
        string output = parse.GetValue(c.Output)!;
        string command = "mg " + string.Join(' ', Program.Arguments);
        var provenance = new Provenance($"trained: {source}", "", "mg train", TrainerVersion, DateTimeOffset.UtcNow,
            [$"command: {command}", $"seed {parse.GetValue(c.Seed)}", summary]);
        WeightFile.Save(output, net.Architecture with { Input = input }, net.Export(), provenance);
        string metricsPath = Path.ChangeExtension(output, ".metrics.json");
        File.WriteAllText(metricsPath, JsonSerializer.Serialize(new
        {
            architecture = net.Architecture.ToString(), source, samples = metrics.Samples, accuracy = metrics.Accuracy,
            dacc = metrics.DetectionAccuracy, fpr = metrics.FalsePositiveRate, seed = parse.GetValue(c.Seed), command,
        }, new JsonSerializerOptions { WriteIndented = true }));
        Console.Error.WriteLine($"mg train: {summary} → {output} (+ {Path.GetFileName(metricsPath)})");
    }

    /// <summary>Fashion-MNIST samples as padded 3×32×32 RGB images.</summary>
    private sealed class FashionMnistImages(FashionMnist data, int count) : ILabeledImages
    {
        public int Count => count;
        public (RgbImage Image, int Label) this[int index] => (RgbImage.FromPlanar(data.ToPlanar32(index).Values, 32, 32), data.Label(index));
    }
}

/// <summary>GAN progress on one stderr line: iterations done, D and G losses, D's mean sigmoid on real and fake images.</summary>
internal sealed class GanProgressBar(string label) : IProgress<GanProgress>
{
    public void Report(GanProgress p)
    {
        ProgressBar.Draw($"{label} {p.Iteration}/{p.Iterations}", 100 * p.Iteration / p.Iterations,
            $" D loss {p.DiscriminatorLoss:F4}  G loss {p.GeneratorLoss:F4}  D(real) {p.RealScore:F3}  D(fake) {p.FakeScore:F3}");
        if (p.Iteration == p.Iterations) ProgressBar.EndLine();
    }
}

/// <summary>Training progress on one stderr line: epoch, share of the epoch, running loss and accuracy.</summary>
internal sealed class TrainingProgressBar(string label) : IProgress<TrainingProgress>
{
    private int _last = -1;

    public void Report(TrainingProgress p)
    {
        int percent = 100 * p.Step / p.StepsPerEpoch;
        if (percent == _last && p.Step != p.StepsPerEpoch) return;
        _last = percent;
        ProgressBar.Draw($"{label} epoch {p.Epoch}/{p.Epochs}", percent, $" loss {p.Loss:F4}  acc {p.Accuracy:P1}");
        if (p.Step == p.StepsPerEpoch) ProgressBar.EndLine();
    }
}
