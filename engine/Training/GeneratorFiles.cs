using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Engine.Training;

/// <summary>Loads the image generators `mg train gan` saves.</summary>
public static class GeneratorFiles
{
    /// <summary>An image generator (family and width from the file's architecture), checked like a network.</summary>
    public static (ImageGenerator Generator, WeightFileContents Contents) Load(IKernels kernels, string path)
    {
        var contents = ModelFiles.LoadChecked(path);
        if (contents.Architecture.Kind != NetworkKind.ImageGenerator)
            throw new ArgumentException($"'{path}' holds a {contents.Architecture}, not an image generator.");
        return (ImageGenerator.FromTensors(kernels, contents.Architecture, contents.Tensors), contents);
    }
}
