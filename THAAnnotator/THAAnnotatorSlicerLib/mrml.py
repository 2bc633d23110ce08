"""MRML nodes <-> the library's arrays: volumes, segment masks and slice geometry."""
from __future__ import annotations

import numpy as np
import vtk
import vtk.util.numpy_support

import slicer
from THAAnnotatorLib.errors import InputError
from THAAnnotatorLib.volume import Volume, canonicalize

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# numpy index (k, j, i) of arrayFromVolume -> IJK index (i, j, k)
_KJI_TO_IJK = np.array([[0.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])


def ensureSegmentationConverterRules() -> None:
    """Register the binary labelmap <-> closed surface converters if nobody has.

    The Slicer application registers them at start-up; the slicer-core wheel does not.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for ruleClass in ("vtkBinaryLabelmapToClosedSurfaceConversionRule",
                      "vtkClosedSurfaceToBinaryLabelmapConversionRule"):
        if ruleClass not in registered:
            factory.RegisterConverterRule(getattr(slicer, ruleClass)())


def matrixToArray(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def arrayToMatrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def ijkToRasArray(volumeNode) -> np.ndarray:
    """The volume node's IJK-to-RAS matrix (its own, without parent transforms), 4 x 4."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return matrixToArray(matrix)


def arrayIndexToLps(volumeNode) -> np.ndarray:
    """4 x 4 matrix from homogeneous ``arrayFromVolume`` indices (k, j, i) to LPS mm."""
    return LPS_TO_RAS @ ijkToRasArray(volumeNode) @ _KJI_TO_IJK


def nodeReferenceInScene(node, role: str):
    """The node ``node`` references as ``role``, if it is in the same scene; else None."""
    referenced = node.GetNodeReference(role)
    return referenced if referenced is not None and referenced.GetScene() is node.GetScene() else None


def cropLabels(labels: np.ndarray):
    """(lower (k, j, i) corner, uint8 labels cropped to where they are non-zero) of a (k, j, i)
    label map or mask; None if all zero. Pure numpy, so it may run off the main thread."""
    present = [np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if any(p.size == 0 for p in present):
        return None
    (k0, k1), (j0, j1), (i0, i1) = ((int(p[0]), int(p[-1])) for p in present)
    return (k0, j0, i0), np.ascontiguousarray(labels[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1], dtype=np.uint8)


def orientedImage(cropped, ijkToRas: np.ndarray):
    """The vtkOrientedImageData of a :func:`cropLabels` result (None stays None)."""
    if cropped is None:
        return None
    (k0, j0, i0), values = cropped
    nk, nj, ni = values.shape
    image = slicer.vtkOrientedImageData()
    image.SetExtent(i0, i0 + ni - 1, j0, j0 + nj - 1, k0, k0 + nk - 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    vtk.util.numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(values.shape)[:] = values
    image.SetImageToWorldMatrix(arrayToMatrix(ijkToRas))
    return image


def orientedImageFromMask(mask: np.ndarray, ijkToRas: np.ndarray):
    """A vtkOrientedImageData of a (k, j, i) mask cropped to its bounding box; None if empty."""
    return orientedImage(cropLabels(mask), ijkToRas)


def checkVolumeNode(volumeNode) -> str:
    """The quick checks of :func:`volumeFromNode` (no look at the voxels); returns the volume's
    description for messages. Raises InputError if the node is missing, empty or not scalar."""
    if volumeNode is None:
        raise InputError("No CT volume is selected; select the hip CT as the input volume.")
    name = f'The volume "{volumeNode.GetName()}"'
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode") or volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"{name} is not a scalar CT volume (it is a {volumeNode.GetClassName()}); "
                         "select the CT scan instead.")
    imageData = volumeNode.GetImageData()
    if imageData is None or imageData.GetPointData().GetScalars() is None:
        raise InputError(f"{name} holds no image data; load the CT scan again.")
    if imageData.GetNumberOfScalarComponents() != 1:
        raise InputError(f"{name} has {imageData.GetNumberOfScalarComponents()} values per voxel "
                         "(a colour or vector image); select a grey-scale CT volume.")
    return name


def volumeFromNode(volumeNode) -> Volume:
    """The CT of a scalar volume node as a canonical, validated :class:`Volume`.

    Raises InputError if the node is missing, empty, not a scalar volume or not a CT in HU.
    """
    name = checkVolumeNode(volumeNode)
    array = slicer.util.arrayFromVolume(volumeNode)  # (k, j, i), a view of the node's voxels
    volume = canonicalize(array, arrayIndexToLps(volumeNode))
    from THAAnnotatorLib.io import validate_ct

    validate_ct(volume, name=name)
    return volume


def geometryOnlyVolume(indexToLps, sourceAxes, sourceFlipped, shape) -> Volume:
    """A :class:`Volume` that knows its layout and geometry but holds no voxels (its ``hu`` is NaN
    everywhere, without memory): what writing a result computed in another process needs."""
    return Volume(np.broadcast_to(np.float32(np.nan), tuple(shape)), np.asarray(indexToLps),
                  tuple(sourceAxes), tuple(sourceFlipped))


def segmentArray(segmentationNode, segmentId: str, volumeNode) -> np.ndarray:
    """A segment as a uint8 0/1 array in the layout of ``arrayFromVolume(volumeNode)``."""
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    if segment is None:
        raise KeyError(f"No segment {segmentId} in {segmentationNode.GetName()}.")
    dims = volumeNode.GetImageData().GetDimensions()
    out = np.zeros(dims[::-1], dtype=np.uint8)
    # the segment's layer, which it may share with other segments (told apart by label value)
    image = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(segmentationNode, segmentId, image)
    extent = image.GetExtent()
    if image.GetPointData().GetScalars() is None or extent[1] < extent[0]:
        return out
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
    reference.SetImageToWorldMatrix(arrayToMatrix(ijkToRasArray(volumeNode)))
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(image, reference, resampled)
    e = resampled.GetExtent()
    if e[1] < e[0]:
        return out
    values = vtk.util.numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars())
    values = values.reshape(e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    # clip the resampled extent to the volume
    lo = [max(e[2 * a], 0) for a in range(3)]
    hi = [min(e[2 * a + 1], dims[a] - 1) for a in range(3)]
    if any(h < l for l, h in zip(lo, hi)):
        return out
    out[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = values[
        lo[2] - e[4]:hi[2] - e[4] + 1, lo[1] - e[2]:hi[1] - e[2] + 1, lo[0] - e[0]:hi[0] - e[0] + 1] \
        == segment.GetLabelValue()
    return out


def sliceCenterRas(volumeNode, sliceIndex: int, inPlaneRas=None) -> np.ndarray:
    """RAS point (mm, the volume's own coordinates) on axial slice ``sliceIndex``.

    ``sliceIndex`` counts the volume's axial slices from the most inferior one (0), as the
    library's canonical z index does, whatever the volume's voxel layout. The point is
    ``inPlaneRas`` moved along the slice normal into the slice, or the slice's center.
    """
    dims = volumeNode.GetImageData().GetDimensions()
    shape = dims[::-1]
    toLps = arrayIndexToLps(volumeNode)
    cosines = toLps[:3, :3] / np.linalg.norm(toLps[:3, :3], axis=0)
    axis = int(np.argmax(np.abs(cosines[2])))  # the array axis closest to patient S (as canonicalize)
    sliceIndex = int(sliceIndex)
    if not 0 <= sliceIndex < shape[axis]:
        raise InputError(f"Slice {sliceIndex} is outside the volume \"{volumeNode.GetName()}\", which has "
                         f"{shape[axis]} axial slices; check that the right scan is selected.")
    index = shape[axis] - 1 - sliceIndex if cosines[2, axis] < 0 else sliceIndex
    kji = (np.array(shape, dtype=float) - 1) / 2
    kji[axis] = index
    toRas = LPS_TO_RAS @ toLps
    planePoint = (toRas @ np.append(kji, 1.0))[:3]
    if inPlaneRas is None:
        return planePoint
    normal = toRas[:3, axis] / np.linalg.norm(toRas[:3, axis])
    inPlaneRas = np.asarray(inPlaneRas, dtype=float)
    return inPlaneRas + normal * float(np.dot(planePoint - inPlaneRas, normal))
