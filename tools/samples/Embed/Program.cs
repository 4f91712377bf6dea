// Embedding the engine: classify an image with a .mgw classifier, then write its gradient representation
// (StyleGAN discriminator forward, backward to the input, scaled to 0–255). Managed code only.
// Usage: dotnet run -- <classifier.mgw> <discriminator.mgw> <image>
using ModelGuardian.Engine;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Weights;

using var kernels = Backends.Create();                       // CUDA when a GPU is present, else the CPU backend
var image = RgbImage.Load(args[2]);                          // PNG, JPEG, BMP, GIF or WebP

var (classifier, _) = ModelFiles.Load(kernels, args[0]);
using (classifier)
{
    int side = classifier.Architecture.InputSide;
    var logits = classifier.Forward(NetworkInput.FromImage(classifier, image), new Shape4(1, 3, side, side));
    var p = OutputProbabilities.From(logits);
    Console.WriteLine($"class {Array.IndexOf(p, p.Max())} with probability {p.Max():F3}");
}

var (discriminator, _) = ModelFiles.LoadTransform(kernels, args[1]);
using (discriminator)
{
    var gradient = new GradientTransform(discriminator).Transform(image);
    File.WriteAllBytes("gradient.png", gradient.ToRgb().EncodePng());
    Console.WriteLine($"gradient.png: {gradient.Resolution}×{gradient.Resolution}, D score {gradient.Score:F3}");
}
